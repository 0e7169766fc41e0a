import type { BusMessage } from "./types.js";

/**
 * A record for the dead-letter topic: the original value (and key), with the stage that gave up on it and why in the
 * headers every stage uses (`x-k8s-audit-stage`, `x-k8s-audit-reason`). `headers` are the original's or extra ones
 * (the ingest adds the cluster); the two named here win.
 */
export function deadLetterMessage(
  stage: string,
  reason: string,
  original: { value: string; key?: string; headers?: Record<string, string> },
): BusMessage {
  return {
    ...(original.key === undefined ? {} : { key: original.key }),
    value: original.value,
    headers: { ...original.headers, "x-k8s-audit-reason": reason, "x-k8s-audit-stage": stage },
  };
}
