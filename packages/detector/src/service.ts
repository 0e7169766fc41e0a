import {
  type Alert,
  type AuditEvent,
  type Bus,
  type BusMessage,
  eventTime,
  type Logger,
  looksLikeAuditEvent,
  type Subscription,
  type Topics,
  whyNotAnAuditEvent,
} from "@k8s-audit/core";
import { countsInWindows, type Detector } from "./engine.js";
import type { DetectorMetrics } from "./metrics.js";
import { encodePartial } from "./windows/bucket.js";
import { type CompiledWindowRule, WindowEngine } from "./windows/engine.js";
import { encodeTick } from "./windows/window-service.js";

export interface DetectorServiceOptions {
  bus: Bus;
  topics: Topics;
  detector: Detector;
  logger: Logger;
  groupId?: string;
  /**
   * Scale-out: the timed rules are counted here per batch and their partial counts published to `topics.windows`,
   * keyed by rule and key, for the window stage (startWindowService) to add up. Without it the detector's own window
   * engine counts (one process sees everything: the embedded default).
   */
  repartition?: { windowRules: readonly CompiledWindowRule[] };
  /** How often the clock-based timed rules (silence) are checked, in the embedded mode. */
  idleCheckMs?: number;
  /** Called with each batch's alerts after they are on the alerts topic (the CLI prints them). */
  onAlerts?: (alerts: Alert[]) => void;
  /** Called with this instance's events partitions after each rebalance. */
  onAssignment?: (partitions: number[]) => void;
  metrics?: DetectorMetrics;
}

const alertMessages = (alerts: Alert[]): BusMessage[] => alerts.map((a) => ({ key: a.event.id, value: JSON.stringify(a) }));

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
  const mapSide = options.repartition ? new WindowEngine(options.repartition.windowRules) : undefined;
  const progress = new Map<number, number>();

  const metrics = options.metrics;
  const windows = detector.windows;
  if (metrics && windows) metrics.watchWindows(() => windows.gauges());
  const publishAlerts = async (alerts: Alert[], extra: Promise<void>[] = []) => {
    await Promise.all([bus.publish(topics.alerts, alertMessages(alerts)), ...extra]);
    if (metrics) for (const a of alerts) metrics.alerts.inc({ rule: a.rule.id });
    if (alerts.length > 0) {
      logger.debug({ alerts: alerts.length }, "alerts published");
      options.onAlerts?.(alerts);
    }
  };

  const subscription = await bus.consume({
    topic: topics.events,
    groupId: options.groupId ?? "k8s-audit-detector",
    onAssignment: options.onAssignment,
    // A batch waits for its alerts and partial counts to be acknowledged: overlapping partitions keeps that round trip
    // from serialising the stage. Each batch's evaluation runs to completion before its first await, so the shared
    // detector state never sees two batches interleaved.
    partitionsConcurrently: 3,
    maxBytesPerPartition: 4 * 1024 * 1024,
    eachBatch: async (messages) => {
      const alerts: Alert[] = [];
      const deadLetters: BusMessage[] = [];
      let from = Number.POSITIVE_INFINITY;
      let to = Number.NEGATIVE_INFINITY;
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
        if (mapSide && countsInWindows(parsed)) {
          const time = Date.parse(eventTime(parsed as AuditEvent));
          if (Number.isNaN(time)) continue;
          mapSide.collect(parsed, time);
          if (time < from) from = time;
          if (time > to) to = time;
        }
      }
      alerts.push(...detector.expire());
      metrics?.events.inc(messages.length - deadLetters.length);
      if (deadLetters.length) metrics?.deadLetters.inc(deadLetters.length);
      const extra = [bus.publish(topics.deadLetter, deadLetters)];
      if (mapSide && windowsTopic) {
        // Partials first, then the tick, in one publish: a windows partition that hears "source p is at time t" has
        // already received everything p counted up to t.
        const source = messages[0]?.partition ?? 0;
        const known = Math.max(progress.get(source) ?? Number.NEGATIVE_INFINITY, to);
        if (Number.isFinite(known)) progress.set(source, known);
        const records: BusMessage[] = mapSide.drainPartials().map((p) => ({ key: `${p.rule}\u0000${p.key}`, value: encodePartial(p) }));
        if (Number.isFinite(known)) {
          const tick = encodeTick({ source, sources, from: Number.isFinite(from) ? from : known, to: known });
          for (let partition = 0; partition < targets; partition++) records.push({ partition, value: tick });
        }
        extra.push(bus.publish(windowsTopic, records));
      }
      await publishAlerts(alerts, extra);
    },
  });

  // Embedded mode: silence is noticed by the clock here (scale-out: by the window stage).
  const idleTimer =
    !mapSide && detector.windows
      ? setInterval(() => {
          const alerts = detector.windows?.idle() ?? [];
          if (alerts.length) publishAlerts(alerts).catch((err) => logger.warn({ err }, "silence alerts not published"));
        }, options.idleCheckMs ?? 10_000)
      : undefined;
  idleTimer?.unref();
  return {
    stop: async () => {
      if (idleTimer) clearInterval(idleTimer);
      await subscription.stop();
    },
  };
}

function deadLetter(raw: string, reason: string, key?: string): BusMessage {
  return { key, value: raw, headers: { "x-k8s-audit-reason": reason, "x-k8s-audit-stage": "detector" } };
}
