import type { Alert } from "@k8s-audit/core";
import type { TimedRuleDefinition } from "@k8s-audit/rules";
import type { Bucket } from "./bucket.js";
import { type ChainLink, type RuleState, touch } from "./state.js";
import { timedAlert } from "./timed-alert.js";

/** Runs the key's step hits of this window, in event-time order, through the progress carried from earlier windows. */
export function evaluateSequence(
  state: RuleState,
  def: Extract<TimedRuleDefinition, { kind: "sequence" }>,
  key: string,
  bucket: Bucket,
): Alert[] | undefined {
  if (!bucket.steps?.length) return undefined;
  const n = def.steps.length;
  const within = def.within * 1000;
  // Same event matching several steps: the later step first, so one event never completes a sequence by itself.
  const hits = [...bucket.steps].sort(
    (a, b) => a.time - b.time || (a.auditID < b.auditID ? -1 : a.auditID > b.auditID ? 1 : b.step - a.step),
  );
  const chain = state.chains.get(key) ?? new Array<ChainLink | undefined>(n).fill(undefined);
  const alerts: Alert[] = [];
  for (const hit of hits) {
    let completed: ChainLink | undefined;
    if (def.ordered) {
      if (hit.step === 0) chain[0] = { start: hit.time, ids: [hit.auditID] };
      else {
        const before = chain[hit.step - 1];
        if (before && hit.time - before.start <= within) {
          chain[hit.step] = { start: before.start, ids: [...before.ids, hit.auditID] };
          if (hit.step === n - 1) completed = chain[hit.step];
        }
      }
    } else {
      chain[hit.step] = { start: hit.time, ids: [hit.auditID] };
      const links = chain.filter((l): l is ChainLink => l !== undefined && hit.time - l.start <= within);
      if (links.length === n) {
        const first = Math.min(...links.map((l) => l.start));
        completed = { start: first, ids: links.sort((a, b) => a.start - b.start).flatMap((l) => l.ids) };
      }
    }
    if (completed) {
      chain.fill(undefined);
      const names = def.steps.map((s) => s.name).join(" → ");
      alerts.push(
        timedAlert(state, key, bucket.first, completed.start, hit.time, n, `${key}: ${names} within ${def.within} s`, completed.ids, {
          steps: names,
        }),
      );
    }
  }
  touch(state.chains, key, chain);
  return alerts.length ? alerts : undefined;
}
