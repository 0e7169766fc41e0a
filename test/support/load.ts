import { auditEvent, eventList } from "./events.js";

export interface BatchOutcome {
  auditIDs: string[];
  status: number | "error";
  /** When the answer came (ms since the epoch). */
  at: number;
  retryAfter?: string;
  storedIn?: string;
}

/**
 * Posts batches of fresh events as an apiserver would (a few requests in flight), until `shouldStop` says so or
 * `maxBatches` were sent. Bounded in count and time; targets loopback only.
 */
export async function postLoad(
  url: string,
  options: { batchSize: number; concurrency: number; maxBatches: number; shouldStop?: () => boolean; pauseMs?: number },
): Promise<BatchOutcome[]> {
  const outcomes: BatchOutcome[] = [];
  let sent = 0;
  const worker = async () => {
    while (sent < options.maxBatches && !options.shouldStop?.()) {
      sent++;
      const items = Array.from({ length: options.batchSize }, () => auditEvent());
      const auditIDs = items.map((e) => e.auditID as string);
      try {
        const res = await fetch(url, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify(eventList(items)),
          signal: AbortSignal.timeout(30_000),
        });
        const body = (await res.json().catch(() => ({}))) as { storedIn?: string };
        outcomes.push({
          auditIDs,
          status: res.status,
          at: Date.now(),
          retryAfter: res.headers.get("retry-after") ?? undefined,
          storedIn: body.storedIn,
        });
      } catch {
        outcomes.push({ auditIDs, status: "error", at: Date.now() });
      }
      if (options.pauseMs) await new Promise((r) => setTimeout(r, options.pauseMs));
    }
  };
  await Promise.all(Array.from({ length: options.concurrency }, worker));
  return outcomes;
}

export const acknowledged = (outcomes: BatchOutcome[]) =>
  outcomes.filter((o) => typeof o.status === "number" && o.status >= 200 && o.status < 300).flatMap((o) => o.auditIDs);
