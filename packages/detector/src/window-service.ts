import {
  type Alert,
  type Bus,
  type BusMessage,
  type ConsumedMessage,
  consumerGroupsOf,
  DEFAULT_CONFIG,
  deadLetterMessage,
  type Logger,
  type Subscription,
  type Topics,
} from "@k8s-audit/core";
import type { CompiledWindowRule } from "@k8s-audit/rules";
import {
  decodeWindowsRecord,
  StormAggregator,
  sumGauges,
  type Tick,
  WindowEngine,
  type WindowEngineOptions,
  type WindowGauges,
  type WindowStats,
} from "@k8s-audit/windows";
import { alertPublisher } from "./alert-publisher.js";
import type { DetectorMetrics } from "./metrics.js";

export interface WindowServiceOptions {
  bus: Bus;
  topics: Topics;
  windowRules: readonly CompiledWindowRule[];
  logger: Logger;
  groupId?: string;
  engine?: WindowEngineOptions;
  /** A source (events partition) silent this long no longer holds the watermark back. */
  idleSourceMs?: number;
  /** How often idle sources and silence are checked. */
  idleCheckMs?: number;
  onAlerts?: (alerts: Alert[]) => void;
  /** Called with this instance's partitions after each rebalance. */
  onAssignment?: (partitions: number[]) => void;
  metrics?: DetectorMetrics;
  /** Window in which a rule's alerts for one principal fold into one summary (as the in-process detector's). */
  stormWindowMs?: number;
}

export interface WindowService extends Subscription {
  /** Summed over the partitions this instance owns. */
  stats(): WindowStats;
}

/**
 * One windows partition's state: its engine, and how far each events partition has been read. The watermark is the
 * slowest source's progress (as Flink aligns input channels), so how many detector instances read the events, and
 * how fast each is, does not change which events a window holds when it closes.
 */
class PartitionWindows {
  readonly engine: WindowEngine;
  /** Storms of the per-event alerts whose rule and principal this partition owns. */
  readonly storms: StormAggregator;
  private readonly sources = new Map<number, { to: number; wall: number }>();
  /** The offset after the last record read. */
  nextOffset: bigint | undefined;
  private expected = 0;
  private readonly created = Date.now();

  constructor(
    rules: readonly CompiledWindowRule[],
    options: WindowEngineOptions | undefined,
    private readonly idleSourceMs: number,
    stormWindowMs: number,
  ) {
    this.engine = new WindowEngine(rules, options);
    this.storms = new StormAggregator(stormWindowMs, { maxFutureSkewMs: options?.maxFutureSkewMs });
  }

  /**
   * A tick covers the partial counts its source flushed since its previous tick. This engine has all of them when it
   * read that previous tick too, or read the partition from its very beginning; only then does the tick's start count
   * as stream time learned (warm-up). After a restart mid-stream, learning restarts from the first complete tick.
   */
  tick(t: Tick, now: number, fromBeginning: boolean): void {
    const previous = this.sources.get(t.source);
    this.sources.set(t.source, { to: Math.max(previous?.to ?? Number.NEGATIVE_INFINITY, t.to), wall: now });
    this.expected = t.sources;
    if (previous || fromBeginning) this.engine.noteStreamTime(t.from);
  }

  /** Whether this state was built from offset 0 of its partition. */
  fromBeginning: boolean | undefined;

  /** The slowest active source's progress; sources silent for idleSourceMs (or never heard from) stop counting. */
  watermark(now: number): number {
    if (this.expected === 0) return Number.NEGATIVE_INFINITY;
    let slowest = Number.POSITIVE_INFINITY;
    let newest = Number.NEGATIVE_INFINITY;
    for (let p = 0; p < this.expected; p++) {
      const s = this.sources.get(p);
      if (!s) {
        if (now - this.created < this.idleSourceMs) return Number.NEGATIVE_INFINITY;
        continue;
      }
      newest = Math.max(newest, s.to);
      if (now - s.wall <= this.idleSourceMs) slowest = Math.min(slowest, s.to);
    }
    // Every source idle: the stream is quiet and what has arrived is all there is.
    return Number.isFinite(slowest) ? slowest : newest;
  }
}

/**
 * Takes a batch of windows-topic records into the partition's state: ticks move its sources' progress, partial counts
 * merge into windows, per-event alerts fold into storms. A foreign or damaged record must neither stop the stage (a
 * throw here would be redelivered forever) nor corrupt a window: it is checked whole first, then dead-lettered with
 * the reason and skipped.
 */
function applyRecords(
  state: PartitionWindows,
  messages: readonly ConsumedMessage[],
  now: number,
  logger: Logger,
): { alerts: Alert[]; deadLetters: BusMessage[] } {
  const alerts: Alert[] = [];
  const deadLetters: BusMessage[] = [];
  for (const message of messages) {
    const decoded = decodeWindowsRecord(message.value);
    if ("unusable" in decoded) {
      logger.warn(
        { partition: message.partition, offset: message.offset, reason: decoded.unusable },
        "windows topic: unusable record; dead-lettered",
      );
      deadLetters.push(deadLetterMessage("windows", `window stage: ${decoded.unusable}`, { key: message.key, value: message.value }));
      continue;
    }
    const record = decoded.record;
    const offset = BigInt(message.offset);
    if ("tick" in record) state.tick(record.tick, now, state.fromBeginning === true);
    else if ("partials" in record) for (const p of record.partials) state.engine.merge(p, offset);
    else
      for (const a of record.alerts) {
        const { emit, closed } = state.storms.offer(a, Date.parse(a["@timestamp"]), offset);
        if (emit) alerts.push(emit);
        alerts.push(...closed);
      }
  }
  return { alerts, deadLetters };
}

/**
 * The window stage of a scale-out deployment: reads the detectors' partial counts and per-event alerts from the
 * internal windows topic (partitioned by rule and key, so each key's state lives in exactly one partition), adds the
 * counts up per partition and publishes the alerts of windows the watermark has closed, and publishes the per-event
 * alerts, folding storms of one rule and principal into summaries as the in-process detector does. Offsets are committed after the alerts are published,
 * and never past an open window's first record, so open windows survive a restart or rebalance; what is remembered
 * across windows (baselines, sequence progress, silence) does not, and baselines warm up again.
 */
export async function startWindowService(options: WindowServiceOptions): Promise<WindowService> {
  const { bus, topics, logger } = options;
  const windowsTopic = topics.windows;
  if (!windowsTopic) throw new Error("the window stage needs topics.windows");
  await bus.ensureTopics([windowsTopic, topics.alerts, topics.deadLetter]);
  const idleSourceMs = options.idleSourceMs ?? 30_000;
  const partitions = new Map<number, PartitionWindows>();
  const stateFor = (partition: number) => {
    let state = partitions.get(partition);
    if (!state) {
      state = new PartitionWindows(
        options.windowRules,
        options.engine,
        idleSourceMs,
        options.stormWindowMs ?? DEFAULT_CONFIG.K8S_AUDIT_STORM_WINDOW_SECONDS * 1000,
      );
      partitions.set(partition, state);
    }
    return state;
  };
  const publish = alertPublisher({ bus, topic: topics.alerts, logger, metrics: options.metrics, onAlerts: options.onAlerts });

  /** Alerts (and dead letters) whose publish failed: sent first by the next batch or check. */
  let pending: Alert[] = [];
  let pendingDeadLetters: BusMessage[] = [];
  // Counters of partitions that moved away stay counted: they happened.
  let retired = sumGauges([]);
  let subscription: Subscription | undefined;
  /**
   * Commits each partition's offset up to the first record of its oldest open window (or all it read, when none is
   * open): a restarted or new owner reads the open windows' partial counts again and rebuilds them exactly. Windows
   * that closed after that point are re-emitted with the same alert ids (deduplicated downstream).
   */
  const commitDone = async () => {
    const offsets = [...partitions].flatMap(([partition, state]) => {
      const open = [state.engine.oldestOpenOffset(), state.storms.oldestOffset()].filter((o): o is bigint => o !== undefined);
      // biome-ignore lint/complexity/useMathMinMax: offsets are bigints, which Math.min does not take.
      const next = open.length ? open.reduce((a, b) => (a < b ? a : b)) : state.nextOffset;
      return next === undefined ? [] : [{ partition, offset: next.toString() }];
    });
    await subscription?.commit?.(offsets).catch((err) => logger.warn({ err }, "window stage offsets not committed"));
  };
  subscription = await bus.consume({
    topic: windowsTopic,
    groupId: options.groupId ?? consumerGroupsOf(DEFAULT_CONFIG).windows,
    manualCommit: true,
    onAssignment: (owned) => {
      // A partition that moved away takes its state with it; if it comes back, it starts afresh.
      for (const [p, state] of [...partitions]) {
        if (owned.includes(p)) continue;
        retired = sumGauges([retired, { ...state.engine.stats, openKeys: 0, rememberedKeys: 0 }]);
        partitions.delete(p);
      }
      options.onAssignment?.(owned);
    },
    eachBatch: async (messages) => {
      const first = messages[0];
      if (!first) return;
      const state = stateFor(first.partition);
      state.fromBeginning ??= first.offset === "0";
      const now = Date.now();
      const { alerts, deadLetters } = applyRecords(state, messages, now, logger);
      state.nextOffset = BigInt((messages[messages.length - 1] as (typeof messages)[number]).offset) + 1n;
      const watermark = state.watermark(now);
      // The state above has already taken this batch in (a storm's head is emitted once, when it opens): if the
      // publish fails, throwing would have kafkajs hand the same batch in again, and those alerts would never be
      // emitted (and partial counts would be added twice). So they are kept and sent before anything newer, by the
      // next batch or the timer; offsets are committed only after a publish succeeds, so a crash before then reads
      // these records again from the last commit and rebuilds the same alerts.
      const out = [...pending, ...alerts, ...state.engine.advance(watermark), ...state.storms.expire(watermark)];
      const dead = [...pendingDeadLetters, ...deadLetters];
      pending = [];
      pendingDeadLetters = [];
      try {
        await publish(out, [bus.publish(topics.deadLetter, dead)]);
      } catch (err) {
        pending = [...out, ...pending];
        pendingDeadLetters = [...dead, ...pendingDeadLetters];
        logger.warn({ err, alerts: out.length }, "window alerts not published; retried with the next batch or check");
        return;
      }
      await commitDone();
    },
  });

  // Windows closed by the clock (idle sources) and silence: a failed publish is kept and retried; offsets move on only
  // after a publish succeeds, so a crash before then reads those windows again.
  const timer = setInterval(() => {
    const now = Date.now();
    const alerts = [
      ...pending,
      ...[...partitions.values()].flatMap((s) => {
        const watermark = s.watermark(now);
        return [...s.engine.advance(watermark), ...s.storms.expire(watermark), ...s.engine.idle(now)];
      }),
    ];
    pending = [];
    const dead = pendingDeadLetters;
    pendingDeadLetters = [];
    publish(alerts, [bus.publish(topics.deadLetter, dead)]).then(commitDone, (err) => {
      pending = [...alerts, ...pending];
      pendingDeadLetters = [...dead, ...pendingDeadLetters];
      logger.warn({ err, alerts: alerts.length }, "window alerts not published; retried at the next check");
    });
  }, options.idleCheckMs ?? 5_000);
  timer.unref();

  const gauges = (): WindowGauges =>
    sumGauges([{ ...retired, openKeys: 0, rememberedKeys: 0 }, ...[...partitions.values()].map((s) => s.engine.gauges())]);
  const stats = (): WindowStats => {
    const { openKeys: _open, rememberedKeys: _remembered, ...counters } = gauges();
    return counters;
  };
  options.metrics?.watchWindows(gauges);
  let reported = "";
  const statsTimer = setInterval(() => {
    const now = JSON.stringify(stats());
    if (now !== reported) logger.info({ windows: stats() }, "window engine counters");
    reported = now;
  }, 60_000);
  statsTimer.unref();

  return {
    stats,
    stop: async () => {
      clearInterval(timer);
      clearInterval(statsTimer);
      await subscription?.stop();
    },
  };
}
