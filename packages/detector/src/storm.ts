import { type Alert, alertId } from "@k8s-audit/core";

interface Storm {
  windowStart: number;
  first: Alert;
  count: number;
  auditIDs: string[];
  /** Scale-out: the offset of the record that opened the storm, to hold commits back to. */
  firstOffset?: bigint;
}

/** What a storm is per: rule, cluster and principal (the impersonated one when there is one). */
export function stormKey(alert: Alert): string {
  const principal = alert.kubernetes.audit.impersonatedUser?.username ?? alert.user?.name ?? "";
  return `${alert.rule.id}\u0000${alert.orchestrator.cluster.name}\u0000${principal}`;
}

const MAX_AUDIT_IDS = 100;

/**
 * Turns a storm of the same alert for the same principal into one alert with a count. Per (rule, cluster, principal)
 * and fixed event-time window: the first alert goes out at once; the rest are counted, and when the window closes (the
 * stream's event time has moved a window past it) one summary alert carries the count, the window and the auditIDs.
 * Its id depends only on rule, cluster, principal and window, so replays and restarts produce the same document.
 */
export class StormAggregator {
  private readonly storms = new Map<string, Storm>();
  private watermark = 0;

  constructor(
    private readonly windowMs = 60_000,
    private readonly maxKeys = 50_000,
  ) {}

  /** Returns the alert if it is the first of its storm window, or nothing if it joins a storm already reported. */
  offer(alert: Alert, eventTimeMs: number, offset?: bigint): { emit?: Alert; closed: Alert[] } {
    const closed: Alert[] = [];
    this.watermark = Math.max(this.watermark, eventTimeMs);
    const key = stormKey(alert);
    const principal = key.split("\u0000")[2] ?? "";
    const windowStart = Math.floor(eventTimeMs / this.windowMs) * this.windowMs;
    const storm = this.storms.get(key);
    if (storm && storm.windowStart === windowStart) {
      storm.count++;
      if (storm.auditIDs.length < MAX_AUDIT_IDS) storm.auditIDs.push(...alert.kubernetes.audit.auditID);
      return { closed };
    }
    if (storm) {
      this.storms.delete(key);
      const summary = this.summarize(storm, principal);
      if (summary) closed.push(summary);
    }
    this.storms.set(key, { windowStart, first: alert, count: 1, auditIDs: [...alert.kubernetes.audit.auditID], firstOffset: offset });
    if (this.storms.size > this.maxKeys) closed.push(...this.evictOldest());
    return { emit: alert, closed };
  }

  /**
   * Summaries of windows the event time has left behind (one window of allowed lateness). The event time is the newest
   * alert's, or the watermark given (scale-out: the slowest events partition's progress).
   */
  expire(watermark = this.watermark): Alert[] {
    const out: Alert[] = [];
    for (const [key, storm] of this.storms) {
      if (storm.windowStart + 2 * this.windowMs > watermark) continue;
      this.storms.delete(key);
      const summary = this.summarize(storm, key.split("\u0000")[2] ?? "");
      if (summary) out.push(summary);
    }
    return out;
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
    const out: Alert[] = [];
    for (const [key, storm] of this.storms) {
      const summary = this.summarize(storm, key.split("\u0000")[2] ?? "");
      if (summary) out.push(summary);
    }
    this.storms.clear();
    return out;
  }

  private evictOldest(): Alert[] {
    const [key, storm] = this.storms.entries().next().value as [string, Storm];
    this.storms.delete(key);
    const summary = this.summarize(storm, key.split("\u0000")[2] ?? "");
    return summary ? [summary] : [];
  }

  private summarize(storm: Storm, principal: string): Alert | undefined {
    if (storm.count < 2) return undefined;
    const { first } = storm;
    const start = new Date(storm.windowStart).toISOString();
    const end = new Date(storm.windowStart + this.windowMs).toISOString();
    return {
      ...first,
      "@timestamp": end,
      message: `${first.rule.name}: ${storm.count} times by ${principal || "unknown"} within ${this.windowMs / 1000} s (first: ${first.message})`,
      event: {
        ...first.event,
        id: alertId(first.rule.id, first.orchestrator.cluster.name, principal, start, "storm"),
        count: storm.count,
        start,
        end,
      },
      kubernetes: { audit: { ...first.kubernetes.audit, auditID: storm.auditIDs } },
    };
  }
}
