/** What a window engine counts about the events it could not count exactly (exported as Prometheus counters). */
export interface WindowStats {
  /** Events older than their window's lateness allowance, dropped. */
  lateEvents: number;
  /** Keys forgotten because a rule tracked its maximum (baselines, sequence progress, silence). */
  evictedKeys: number;
  /** Events counted only in a window's sketch (the long tail beyond the exact keys). */
  sketchedEvents: number;
  /** Tail keys that reached a rule's floor and became exact buckets (heavy hitters). */
  promotedKeys: number;
  /** Events of tail keys that a sketch cannot count (distinct, ratio, sequence and silence rules), dropped. */
  droppedEvents: number;
  /** Events stamped beyond the allowed clock skew: not counted (see WindowEngineOptions.maxFutureSkewMs). */
  futureEvents: number;
}

/** What a window engine (or a window stage's engines together) can report when scraped. */
export interface WindowGauges extends WindowStats {
  /** Keys with an open window (exact buckets). */
  openKeys: number;
  /** Keys remembered across windows (baselines, sequence progress, silence). */
  rememberedKeys: number;
}

/** The sum of several engines' gauges (all zero for none). */
export function sumGauges(all: readonly WindowGauges[]): WindowGauges {
  const sum: WindowGauges = {
    lateEvents: 0,
    evictedKeys: 0,
    sketchedEvents: 0,
    promotedKeys: 0,
    droppedEvents: 0,
    futureEvents: 0,
    openKeys: 0,
    rememberedKeys: 0,
  };
  for (const g of all) for (const k of Object.keys(sum) as (keyof WindowGauges)[]) sum[k] += g[k];
  return sum;
}
