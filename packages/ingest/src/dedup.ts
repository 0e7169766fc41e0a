/**
 * Remembers recently stored events (ingestDedupKey: cluster, auditID, requestReceivedTimestamp, stage, stageTimestamp)
 * for a time window, in bounded memory: the apiserver re-sends a batch whose 2xx it did not see, and HA apiservers may
 * both send. Entries expire after the window; past the capacity the oldest are forgotten first (a Map keeps insertion
 * order).
 */
export class RecentEvents {
  private readonly seen = new Map<string, number>();

  constructor(
    private readonly windowMs = 10 * 60_000,
    private readonly capacity = 200_000,
  ) {}

  has(key: string, now = Date.now()): boolean {
    const expires = this.seen.get(key);
    if (expires === undefined) return false;
    if (expires > now) return true;
    this.seen.delete(key);
    return false;
  }

  /** Record keys only once they are durably stored: a failed publish must not make the retry look like a duplicate. */
  add(keys: Iterable<string>, now = Date.now()): void {
    const expires = now + this.windowMs;
    for (const key of keys) {
      this.seen.delete(key);
      this.seen.set(key, expires);
    }
    this.evict(now);
  }

  get size(): number {
    return this.seen.size;
  }

  private evict(now: number): void {
    for (const [key, expires] of this.seen) {
      if (this.seen.size <= this.capacity && expires > now) break;
      this.seen.delete(key);
    }
  }
}
