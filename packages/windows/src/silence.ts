import type { Alert } from "@k8s-audit/core";
import type { TimedRuleDefinition } from "@k8s-audit/rules";
import type { Bucket, EventFacts } from "./bucket.js";
import { type RuleState, touch } from "./state.js";
import { timedAlert } from "./timed-alert.js";

/** A gap in event time before this window's first event (archived logs, or a live stream that resumed). */
export function evaluateSilence(
  state: RuleState,
  def: Extract<TimedRuleDefinition, { kind: "silence" }>,
  key: string,
  bucket: Bucket,
): Alert[] | undefined {
  const last = state.lastClosed.get(key);
  touch(state.lastClosed, key, {
    time: Math.max(last?.time ?? bucket.maxTime, bucket.maxTime),
    events: (last?.events ?? 0) + bucket.count,
  });
  if (!last || last.events < def.min_events) return undefined;
  if (bucket.minTime - last.time <= def.gap * 1000 || state.reported.get(key) === last.time) return undefined;
  state.reported.set(key, last.time);
  return [silenceAlert(state, def, key, bucket.first, last.time, bucket.minTime)];
}

export function silenceAlert(
  state: RuleState,
  def: Extract<TimedRuleDefinition, { kind: "silence" }>,
  key: string,
  facts: EventFacts,
  lastTime: number,
  until: number,
): Alert {
  const seconds = Math.round((until - lastTime) / 1000);
  return timedAlert(
    state,
    key,
    facts,
    lastTime,
    until,
    1,
    `${key} sent no audit events for ${seconds} s after ${new Date(lastTime).toISOString()} (gap allowed: ${def.gap} s)`,
    [facts.auditID],
    { silent_seconds: String(seconds) },
  );
}
