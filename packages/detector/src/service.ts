import {
  type Alert,
  type Bus,
  type BusMessage,
  consumerGroupsOf,
  DEFAULT_CONFIG,
  deadLetterMessage,
  eventTime,
  type Logger,
  looksLikeAuditEvent,
  type Subscription,
  type Topics,
  whyNotAnAuditEvent,
} from "@k8s-audit/core";
import { type CompiledWindowRule, countsInWindows } from "@k8s-audit/rules";
import { PartialCountCache } from "@k8s-audit/windows";
import { alertPublisher } from "./alert-publisher.js";
import type { Detector } from "./engine.js";
import type { DetectorMetrics } from "./metrics.js";

export interface DetectorServiceOptions {
  bus: Bus;
  topics: Topics;
  detector: Detector;
  logger: Logger;
  groupId?: string;
  /**
   * Scale-out: the timed rules are counted here and their partial counts published to `topics.windows`, keyed by rule
   * and key, for the window stage (startWindowService) to add up; per-event alerts go there too, to be folded into
   * storms by the partition that owns their rule and principal, and published by it. Without it the detector's own
   * window engine counts and it publishes its alerts itself (one process sees everything: the embedded default).
   */
  repartition?: { windowRules: readonly CompiledWindowRule[]; maxFutureSkewMs?: number };
  /** How often the clock-based timed rules (silence) are checked, in the embedded mode. */
  idleCheckMs?: number;
  /** Called with each batch's alerts after they are on the alerts topic (the CLI prints them). */
  onAlerts?: (alerts: Alert[]) => void;
  /** Called with this instance's events partitions after each rebalance. */
  onAssignment?: (partitions: number[]) => void;
  metrics?: DetectorMetrics;
  /** Partitions processed at once and bytes fetched per partition (K8S_AUDIT_DETECTOR_*; the schema's defaults). */
  partitionsConcurrently?: number;
  fetchBytes?: number;
}

/**
 * The detector stage: events topic → rules → alerts topic. A batch's offsets are committed only after its alerts are
 * acknowledged by the bus, so a crash re-evaluates rather than loses; re-evaluation is harmless (deterministic ids).
 */
export async function startDetectorService(options: DetectorServiceOptions): Promise<Subscription> {
  const { bus, topics, detector, logger } = options;
  const windowsTopic = options.repartition ? topics.windows : undefined;
  if (options.repartition && !windowsTopic) throw new Error("repartition needs topics.windows");
  await bus.ensureTopics([topics.events, topics.alerts, topics.deadLetter, ...(windowsTopic ? [windowsTopic] : [])]);
  // Every windows partition hears every events partition's progress (its watermark).
  const [sources, targets] = windowsTopic
    ? await Promise.all([bus.partitionCount(topics.events), bus.partitionCount(windowsTopic)])
    : [0, 0];
  if (options.repartition && detector.foldsStorms)
    throw new Error("with repartition the window stage folds storms: construct the Detector with stormWindowMs: 0");
  const cache = options.repartition
    ? new PartialCountCache(options.repartition.windowRules, { sources, targets }, { maxFutureSkewMs: options.repartition.maxFutureSkewMs })
    : undefined;
  let subscription: Subscription | undefined;
  // Records and offsets of a flush whose publish failed: sent first next time, so no batch is committed uncounted.
  let unsent: { records: BusMessage[]; offsets: { partition: number; offset: string }[] } | undefined;
  let flushing: Promise<void> | undefined;
  const flush = () => {
    flushing ??= (async () => {
      const drained = cache?.drain() ?? { records: [], offsets: [] };
      const batch = unsent
        ? { records: [...unsent.records, ...drained.records], offsets: mergeOffsets(unsent.offsets, drained.offsets) }
        : drained;
      unsent = batch;
      if (windowsTopic) await bus.publish(windowsTopic, batch.records);
      unsent = undefined;
      // A refused commit (the partition moved to another instance in a rebalance) is not retried: whoever owns the
      // partition now reads those batches again from the last commit (at-least-once).
      await subscription?.commit?.(batch.offsets).catch((err) => logger.warn({ err }, "detector offsets not committed"));
    })().finally(() => {
      flushing = undefined;
    });
    return flushing;
  };

  const metrics = options.metrics;
  const windows = detector.windows;
  if (metrics && windows) metrics.watchWindows(() => windows.gauges());
  if (metrics && cache) metrics.watchWindows(() => cache.gauges());
  const publishAlerts = alertPublisher({ bus, topic: topics.alerts, logger, metrics, onAlerts: options.onAlerts });

  subscription = await bus.consume({
    topic: topics.events,
    groupId: options.groupId ?? consumerGroupsOf(DEFAULT_CONFIG).detector,
    onAssignment: options.onAssignment,
    // A batch waits for its alerts and partial counts to be acknowledged: overlapping partitions keeps that round trip
    // from serialising the stage. Each batch's evaluation runs to completion before its first await, so the shared
    // detector state never sees two batches interleaved.
    partitionsConcurrently: options.partitionsConcurrently ?? DEFAULT_CONFIG.K8S_AUDIT_DETECTOR_PARTITIONS_CONCURRENTLY,
    maxBytesPerPartition: options.fetchBytes ?? DEFAULT_CONFIG.K8S_AUDIT_DETECTOR_FETCH_BYTES,
    // Scale-out: offsets are committed when the partial counts of their batches are published (the cache's flush).
    manualCommit: Boolean(cache),
    eachBatch: async (messages) => {
      const alerts: Alert[] = [];
      const deadLetters: BusMessage[] = [];
      const partition = messages[0]?.partition ?? 0;
      for (const message of messages) {
        let parsed: unknown;
        try {
          parsed = JSON.parse(message.value);
        } catch {
          deadLetters.push(deadLetter(message.value, "detector: event is not JSON", message.key));
          continue;
        }
        if (!looksLikeAuditEvent(parsed)) {
          // Only a foreign or damaged record gets here; the full schema says exactly what is wrong with it.
          deadLetters.push(deadLetter(message.value, `detector: invalid event: ${whyNotAnAuditEvent(parsed)}`, message.key));
          continue;
        }
        alerts.push(...detector.evaluate(parsed));
        if (cache && countsInWindows(parsed)) {
          const time = Date.parse(eventTime(parsed));
          if (!Number.isNaN(time)) cache.count(partition, parsed, time);
        }
      }
      alerts.push(...detector.expire());
      metrics?.events.inc(messages.length - deadLetters.length);
      if (deadLetters.length) metrics?.deadLetters.inc(deadLetters.length);
      if (!cache) {
        await publishAlerts(alerts, [bus.publish(topics.deadLetter, deadLetters)]);
        return;
      }
      // Scale-out: alerts go with the partial counts to the window stage, which folds storms and publishes them.
      cache.addAlerts(alerts);
      await bus.publish(topics.deadLetter, deadLetters);
      const last = messages[messages.length - 1];
      if (last) cache.batchDone(partition, (BigInt(last.offset) + 1n).toString());
      if (cache.due()) await flush();
    },
  });
  // Scale-out: a quiet stream still flushes its last counts and ticks within a second.
  const flushTimer = cache
    ? setInterval(() => {
        if (cache.due() || unsent) flush().catch((err) => logger.warn({ err }, "partial window counts not published; retried"));
      }, 250)
    : undefined;
  flushTimer?.unref();

  // Embedded mode: silence is noticed by the clock here (scale-out: by the window stage).
  const idleTimer =
    !cache && detector.windows
      ? setInterval(() => {
          const alerts = detector.windows?.idle() ?? [];
          if (alerts.length) publishAlerts(alerts).catch((err) => logger.warn({ err }, "silence alerts not published"));
        }, options.idleCheckMs ?? 10_000)
      : undefined;
  idleTimer?.unref();
  const consuming = subscription;
  return {
    stop: async () => {
      if (idleTimer) clearInterval(idleTimer);
      if (flushTimer) clearInterval(flushTimer);
      await flushing?.catch(() => {});
      if (cache?.pending || unsent)
        await flush().catch((err) => logger.warn({ err }, "partial window counts not published at stop; their events are read again"));
      await consuming.stop();
    },
  };
}

/** Commit positions merged per partition: the furthest wins (a commit covers everything before it). */
function mergeOffsets(a: { partition: number; offset: string }[], b: { partition: number; offset: string }[]) {
  const out = new Map<number, bigint>();
  for (const { partition, offset } of [...a, ...b]) {
    const next = BigInt(offset);
    const known = out.get(partition);
    if (known === undefined || next > known) out.set(partition, next);
  }
  return [...out].map(([partition, offset]) => ({ partition, offset: offset.toString() }));
}

function deadLetter(raw: string, reason: string, key?: string): BusMessage {
  return deadLetterMessage("detector", reason, { value: raw, ...(key === undefined ? {} : { key }) });
}
