import type { Alert, AuditEvent, BusMessage } from "@k8s-audit/core";
import type { CompiledWindowRule } from "@k8s-audit/rules";
import { WindowEngine } from "./engine.js";
import type { WindowGauges } from "./stats.js";
import { stormKey } from "./storm.js";
import { encodeBatch, encodePartial, encodeTick } from "./wire.js";

/** Well under Kafka's default 1 MB message limit. */
const MAX_RECORD_BYTES = 512 * 1024;

/** The windows partition that owns a rule and key: FNV-1a, so every instance agrees. */
export function partitionOf(key: string, partitions: number): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) h = Math.imul(h ^ key.charCodeAt(i), 0x01000193);
  return (h >>> 0) % partitions;
}

/**
 * The reading side of scale-out windows, as Kafka Streams' record cache: events from many batches are counted into
 * partial buckets per rule, key and window, and leave as one record per bucket when the cache is flushed (every
 * second, or when it holds too many keys), followed by one tick per events partition read since the last flush. A key
 * seen in many batches costs one record per flush instead of one per batch. The offsets of the batches counted are
 * handed out with the records: commit them only once the records are acknowledged.
 */
export class PartialCountCache {
  private readonly engine: WindowEngine;
  private readonly limits: { flushMs: number; maxOpenKeys: number };
  /** Per events partition: newest event time ever read, and the oldest since the last flush. */
  private readonly progress = new Map<number, number>();
  private readonly oldestSinceFlush = new Map<number, number>();
  /** Per events partition: the next offset to read, for the batches counted since the last flush. */
  private readonly offsets = new Map<number, string>();
  private lastFlush = Date.now();
  /** Per-event alerts, encoded, by the windows partition that owns their storm (rule, cluster, principal). */
  private alerts: string[][];

  constructor(
    rules: readonly CompiledWindowRule[],
    private readonly topology: { sources: number; targets: number },
    options: { flushMs?: number; maxOpenKeys?: number; maxFutureSkewMs?: number } = {},
  ) {
    this.limits = { flushMs: options.flushMs ?? 1000, maxOpenKeys: options.maxOpenKeys ?? 20_000 };
    // No key cap here: every key must reach its owner exactly; the cache is bounded by flushing instead.
    this.engine = new WindowEngine(rules, { maxKeysPerWindow: Number.POSITIVE_INFINITY, maxFutureSkewMs: options.maxFutureSkewMs });
    this.alerts = Array.from({ length: topology.targets }, () => []);
  }

  /** Counts one event; an event stamped beyond the allowed clock skew neither counts nor moves its partition's time. */
  count(partition: number, event: AuditEvent, time: number): void {
    if (!this.engine.collect(event, time)) return;
    if (time > (this.progress.get(partition) ?? Number.NEGATIVE_INFINITY)) this.progress.set(partition, time);
    if (time < (this.oldestSinceFlush.get(partition) ?? Number.POSITIVE_INFINITY)) this.oldestSinceFlush.set(partition, time);
  }

  /**
   * Per-event alerts travel with the partial counts to the partition that owns their storm, where one aggregator sees
   * all of a principal's alerts of a rule however many detectors found them (folding is exact at any scale).
   */
  addAlerts(alerts: readonly Alert[]): void {
    for (const a of alerts) this.alerts[partitionOf(stormKey(a), this.topology.targets)]?.push(JSON.stringify(a));
  }

  /** A batch of `partition` is counted; reading resumes at `nextOffset`. */
  batchDone(partition: number, nextOffset: string): void {
    this.offsets.set(partition, nextOffset);
    if (!this.oldestSinceFlush.has(partition) && this.progress.has(partition))
      this.oldestSinceFlush.set(partition, this.progress.get(partition) as number);
  }

  /** The reading side's counters (events stamped beyond the allowed skew are counted here in scale-out). */
  gauges(): WindowGauges {
    return this.engine.gauges();
  }

  get pending(): boolean {
    return this.offsets.size > 0 || this.alerts.some((a) => a.length > 0);
  }

  due(now = Date.now()): boolean {
    return this.pending && (now - this.lastFlush >= this.limits.flushMs || this.engine.gauges().openKeys >= this.limits.maxOpenKeys);
  }

  /**
   * Takes the cached partial counts, then the ticks, as records for the windows topic, and the offsets they cover.
   * Partial counts travel many to a record (`{"partials":[…]}`, up to ~512 KB), addressed to their key's partition:
   * the Kafka client's cost is per record, and one partial count per record made it the stage's bottleneck.
   */
  drain(): { records: BusMessage[]; offsets: { partition: number; offset: string }[] } {
    this.lastFlush = Date.now();
    const byPartition: string[][] = Array.from({ length: this.topology.targets }, () => []);
    for (const p of this.engine.drainPartials())
      byPartition[partitionOf(`${p.rule}\u0000${p.key}`, this.topology.targets)]?.push(encodePartial(p));
    const records: BusMessage[] = [];
    const pack = (field: "partials" | "alerts", encoded: string[], partition: number) => {
      let chunk: string[] = [];
      let bytes = 0;
      const close = () => {
        if (chunk.length) records.push({ partition, value: encodeBatch(field, chunk) });
        chunk = [];
        bytes = 0;
      };
      for (const e of encoded) {
        if (bytes + e.length > MAX_RECORD_BYTES) close();
        chunk.push(e);
        bytes += e.length + 1;
      }
      close();
    };
    for (const [partition, encoded] of byPartition.entries()) pack("partials", encoded, partition);
    for (const [partition, encoded] of this.alerts.entries()) pack("alerts", encoded, partition);
    this.alerts = this.alerts.map(() => []);
    // Ticks after every partial count they cover, in each partition.
    for (const [source, from] of this.oldestSinceFlush) {
      const to = this.progress.get(source) as number;
      const tick = encodeTick({ source, sources: this.topology.sources, from, to });
      for (let partition = 0; partition < this.topology.targets; partition++) records.push({ partition, value: tick });
    }
    const offsets = [...this.offsets].map(([partition, offset]) => ({ partition, offset }));
    this.oldestSinceFlush.clear();
    this.offsets.clear();
    return { records, offsets };
  }
}
