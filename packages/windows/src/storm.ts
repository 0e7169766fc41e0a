import { type Alert, alertId, DEFAULT_MAX_FUTURE_SKEW_MS } from "@k8s-audit/core";
import { isClosed } from "./grace.js";

interface Storm {
  key: string;
  principal: string;
  windowStart: number;
  /** The earliest alert of the window by event time (ties: auditID), whatever the arrival order: the summary's face. */
  earliest: Alert;
  count: number;
  auditIDs: string[];
  /** The per-request ids counted (up to MAX_SEEN_IDS): a redelivered alert is the same alert, not a second one. */
  seen: Set<string>;
  /** Scale-out: the offset of the record that opened the storm, to hold commits back to. */
  firstOffset?: bigint;
}

/** What a storm is per: rule, cluster and principal (the effective identity: user.name). */
export function stormKey(alert: Alert): string {
  return `${alert.rule.id}\u0000${alert.orchestrator.cluster.name}\u0000${alert.user?.name ?? ""}`;
}

/**
 * The id of the one alert that goes out at once for a rule and principal in a storm window: it depends on the window,
 * not on which request arrived first, so live, replayed and scaled-out runs give the same id.
 */
export function stormHeadId(ruleId: string, cluster: string, principal: string, windowStart: number): string {
  return alertId(ruleId, cluster, principal, new Date(windowStart).toISOString(), "first");
}

const MAX_AUDIT_IDS = 100;
/**
 * Per-request alert ids remembered per storm, and per key across its closed windows. At-least-once delivery hands the
 * window stage the same alert again after a detector restart or rebalance; counted twice it would turn one request into
 * a "storm of 2" (a second alert id for one attack), or, after its window closed, a late alert sent alone.
 */
const MAX_SEEN_IDS = 1000;

const earlier = (a: Alert, b: Alert) => {
  const ta = a["@timestamp"];
  const tb = b["@timestamp"];
  if (ta !== tb) return ta < tb;
  return (a.kubernetes.audit.auditID[0] ?? "") < (b.kubernetes.audit.auditID[0] ?? "");
};

/**
 * Turns a storm of the same alert for the same principal into one alert with a count. Per (rule, cluster, principal)
 * and fixed event-time window: the first alert to arrive goes out at once, under an id of the window (stormHeadId);
 * the rest are counted, and when the window closes (the stream's event time has moved a window past it) one summary
 * carries the count, the window, the auditIDs and the earliest alert by event time. Ids depend only on rule, cluster,
 * principal and window, so arrival order, replays and restarts produce the same documents. An alert for a window
 * already summarised (later than the lateness allowance) goes out alone under its own request's id: never lost, never
 * a second summary.
 */
export class StormAggregator {
  /** Open storms by key and window start. */
  private readonly storms = new Map<string, Storm>();
  /** Per key, the newest window already summarised (bounded like the storms). */
  private readonly closedUpTo = new Map<string, number>();
  /** Per key, the per-request ids its closed windows counted (bounded like closedUpTo). */
  private readonly closedSeen = new Map<string, Set<string>>();
  private watermark = 0;
  private readonly maxKeys: number;
  private readonly clock: () => number;
  private readonly maxFutureSkewMs: number;

  constructor(
    private readonly windowMs = 60_000,
    options: { maxKeys?: number; clock?: () => number; maxFutureSkewMs?: number } = {},
  ) {
    this.maxKeys = options.maxKeys ?? 50_000;
    this.clock = options.clock ?? Date.now;
    this.maxFutureSkewMs = options.maxFutureSkewMs ?? DEFAULT_MAX_FUTURE_SKEW_MS;
  }

  /** Returns the alert to send now (the window's head, or a late alert alone), and summaries of storms closed. */
  offer(alert: Alert, eventTimeMs: number, offset?: bigint): { emit?: Alert; closed: Alert[] } {
    const closed: Alert[] = [];
    // A far-future stamp is a broken or hostile clock: it goes out alone, and neither closes other storms early nor
    // opens one that no watermark would ever close (scale-out commits are held back to open storms).
    if (eventTimeMs > this.clock() + this.maxFutureSkewMs) return { emit: alert, closed };
    this.watermark = Math.max(this.watermark, eventTimeMs);
    const key = stormKey(alert);
    const windowStart = Math.floor(eventTimeMs / this.windowMs) * this.windowMs;
    const done = this.closedUpTo.get(key);
    if (done !== undefined && windowStart <= done) {
      // Redelivered after its window closed: it went out already (as the head or in the summary).
      if (this.closedSeen.get(key)?.has(alert.event.id)) return { closed };
      return { emit: alert, closed };
    }
    const stormId = `${key}\u0000${windowStart}`;
    const storm = this.storms.get(stormId);
    if (storm) {
      if (storm.seen.has(alert.event.id)) return { closed };
      if (storm.seen.size < MAX_SEEN_IDS) storm.seen.add(alert.event.id);
      storm.count++;
      if (earlier(alert, storm.earliest)) storm.earliest = alert;
      if (storm.auditIDs.length < MAX_AUDIT_IDS) storm.auditIDs.push(...alert.kubernetes.audit.auditID);
      return { closed };
    }
    const principal = alert.user?.name ?? "";
    this.storms.set(stormId, {
      key,
      principal,
      windowStart,
      earliest: alert,
      count: 1,
      auditIDs: [...alert.kubernetes.audit.auditID],
      seen: new Set([alert.event.id]),
      firstOffset: offset,
    });
    if (this.storms.size > this.maxKeys) closed.push(...this.evictOldest());
    const head = {
      ...alert,
      event: { ...alert.event, id: stormHeadId(alert.rule.id, alert.orchestrator.cluster.name, principal, windowStart) },
    };
    return { emit: head, closed };
  }

  /**
   * Summaries of windows the event time has left behind (one window of allowed lateness). The event time is the newest
   * trusted alert's, or the watermark given (scale-out: the slowest events partition's progress).
   */
  expire(watermark = this.watermark): Alert[] {
    return this.close((storm) => isClosed(storm.windowStart, this.windowMs, watermark));
  }

  /** The offset of the record that opened the oldest storm still open (scale-out), if any. */
  oldestOffset(): bigint | undefined {
    let oldest: bigint | undefined;
    for (const s of this.storms.values())
      if (s.firstOffset !== undefined && (oldest === undefined || s.firstOffset < oldest)) oldest = s.firstOffset;
    return oldest;
  }

  /** Everything still open, e.g. at the end of a replay. */
  flush(): Alert[] {
    return this.close(() => true);
  }

  /** Closes the storms `due` selects, in window order (then key), so summaries come out the same for any arrival. */
  private close(due: (storm: Storm) => boolean): Alert[] {
    const ending = [...this.storms.entries()].filter(([, s]) => due(s));
    ending.sort(([a, x], [b, y]) => x.windowStart - y.windowStart || (a < b ? -1 : a > b ? 1 : 0));
    const out: Alert[] = [];
    for (const [id, storm] of ending) {
      this.storms.delete(id);
      const summary = this.summarize(storm);
      if (summary) out.push(summary);
    }
    return out;
  }

  private evictOldest(): Alert[] {
    const [id, storm] = this.storms.entries().next().value as [string, Storm];
    this.storms.delete(id);
    const summary = this.summarize(storm);
    return summary ? [summary] : [];
  }

  private summarize(storm: Storm): Alert | undefined {
    const before = this.closedUpTo.get(storm.key);
    this.closedUpTo.delete(storm.key);
    this.closedUpTo.set(storm.key, Math.max(storm.windowStart, before ?? storm.windowStart));
    if (this.closedUpTo.size > this.maxKeys) this.closedUpTo.delete(this.closedUpTo.keys().next().value as string);
    const seen = this.closedSeen.get(storm.key) ?? new Set<string>();
    this.closedSeen.delete(storm.key);
    for (const id of storm.seen) if (seen.size < MAX_SEEN_IDS) seen.add(id);
    this.closedSeen.set(storm.key, seen);
    if (this.closedSeen.size > this.maxKeys) this.closedSeen.delete(this.closedSeen.keys().next().value as string);
    if (storm.count < 2) return undefined;
    const first = storm.earliest;
    const start = new Date(storm.windowStart).toISOString();
    const end = new Date(storm.windowStart + this.windowMs).toISOString();
    return {
      ...first,
      "@timestamp": end,
      message: `${first.rule.name}: ${storm.count} times by ${storm.principal || "unknown"} within ${this.windowMs / 1000} s (first: ${first.message})`,
      event: {
        ...first.event,
        id: alertId(first.rule.id, first.orchestrator.cluster.name, storm.principal, start, "storm"),
        count: storm.count,
        start,
        end,
      },
      kubernetes: { audit: { ...first.kubernetes.audit, auditID: [...storm.auditIDs].sort() } },
    };
  }
}
