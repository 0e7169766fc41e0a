import { type AuditEvent, type Bus, dedupKey, type Logger } from "@k8s-audit/core";
import type { Spool } from "./spool.js";

/**
 * What makes a stored event a duplicate: the cluster and core's dedupKey (auditID + requestReceivedTimestamp + stage +
 * stageTimestamp). auditID alone is client-settable (the Audit-ID header) and can repeat across different requests;
 * the request's receive time tells those apart, and a re-send of the same batch repeats them all.
 */
export function ingestDedupKey(cluster: string, event: AuditEvent): string {
  return `${cluster}|${dedupKey(event)}`;
}

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

/**
 * Makes the dedup survive a restart: after `kill -9` (or an OOM kill) between Kafka storing a batch and the client
 * seeing the 2xx, the apiserver sends the batch again to a new process whose memory is empty, and the events would be
 * stored twice. So a starting ingest first learns the keys of what the events topic received within the dedup window
 * (records' own times, the newest `capacity` at most), and of what waits in its spool, before it listens. Best effort:
 * when Kafka does not answer within `timeoutMs` the ingest starts anyway (it must take events into the spool during an
 * outage), with what it learned so far.
 */
export async function warmRecentEvents(
  dedup: RecentEvents,
  options: {
    bus: Bus;
    topic: string;
    windowMs: number;
    capacity: number;
    spool?: Spool;
    logger: Logger;
    timeoutMs?: number;
    now?: number;
  },
): Promise<{ fromTopic: number; fromSpool: number }> {
  const now = options.now ?? Date.now();
  const started = Date.now();
  const learn = (value: string, at: number): boolean => {
    let event: AuditEvent & { cluster?: unknown };
    try {
      event = JSON.parse(value);
    } catch {
      return false;
    }
    if (typeof event?.auditID !== "string" || typeof event.cluster !== "string") return false;
    dedup.add([ingestDedupKey(event.cluster, event)], at);
    return true;
  };
  let fromSpool = 0;
  for (const m of options.spool?.waiting(options.topic) ?? []) if (learn(m.value, now)) fromSpool++;
  let fromTopic = 0;
  if (options.bus.readRecent) {
    const partitions = Math.max(1, await options.bus.partitionCount(options.topic).catch(() => 1));
    try {
      await options.bus.readRecent(
        options.topic,
        {
          sinceMs: now - options.windowMs,
          maxPerPartition: Math.ceil(options.capacity / partitions),
          timeoutMs: options.timeoutMs ?? 20_000,
        },
        (messages) => {
          for (const m of messages) if (learn(m.value, Math.min(m.timestamp, now))) fromTopic++;
        },
      );
    } catch (err) {
      options.logger.warn(
        { err, learned: fromTopic },
        "dedup: could not read the recent events back from Kafka; a batch re-sent across this restart may be stored twice",
      );
    }
  }
  options.logger.info({ fromTopic, fromSpool, ms: Date.now() - started }, "dedup: recent events learned from Kafka and the spool");
  return { fromTopic, fromSpool };
}
