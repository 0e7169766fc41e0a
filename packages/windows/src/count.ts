import type { Alert } from "@k8s-audit/core";
import type { TimedRuleDefinition } from "@k8s-audit/rules";
import type { Bucket } from "./bucket.js";
import { topContributors } from "./bucket.js";
import { type RuleState, touch } from "./state.js";
import { timedAlert } from "./timed-alert.js";

/** Window rules: counts, distinct values and ratios per key, against a threshold and optionally a learned baseline. */
export function evaluateCount(
  state: RuleState,
  def: Extract<TimedRuleDefinition, { kind: "window" }>,
  /** The earliest event time the engine has seen: warm-up counts windows from here. */
  streamStart: number,
  start: number,
  key: string,
  bucket: Bucket,
): Alert[] | undefined {
  const t = def.threshold;
  const value = bucket.distinct ? bucket.distinct.size : def.ratio ? bucket.hits : bucket.count;
  let baseline = 0;
  let aboveBaseline = true;
  if (t.baseline_factor !== undefined) {
    const learnedWindows = (start - Math.floor(streamStart / state.windowMs) * state.windowMs) / state.windowMs;
    const past = state.baselines.get(key);
    const missed = past ? Math.max(0, (start - past.lastWindow) / state.windowMs - 1) : 0;
    baseline = past ? past.average * (1 - t.alpha) ** missed : 0;
    aboveBaseline = learnedWindows >= t.warmup && value >= t.baseline_factor * baseline;
    touch(state.baselines, key, { average: t.alpha * value + (1 - t.alpha) * baseline, lastWindow: start });
  }
  const share = def.ratio ? bucket.hits / bucket.count : 1;
  if (value < t.min || !aboveBaseline || (def.ratio && share < def.ratio.min)) return undefined;
  const what = def.distinct
    ? `${value} distinct ${def.distinct}`
    : def.ratio
      ? `${value} of ${bucket.count} requests (${(share * 100).toFixed(1)}%)`
      : `${value} requests`;
  const base = t.baseline_factor !== undefined ? ` (baseline ${baseline.toFixed(1)})` : "";
  return [
    timedAlert(
      state,
      key,
      bucket.first,
      start,
      start + state.windowMs,
      value,
      `${key} made ${what} in ${def.window} s${base}`,
      bucket.sample,
      {
        baseline: baseline.toFixed(2),
        ...(def.ratio ? { share: share.toFixed(4), requests: String(bucket.count) } : {}),
        top_verbs: topContributors(bucket, "verbs"),
        top_resources: topContributors(bucket, "resources"),
        top_source_ips: topContributors(bucket, "ips"),
      },
    ),
  ];
}
