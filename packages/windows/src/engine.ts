import { type Alert, type AuditEvent, DEFAULT_CONFIG, DEFAULT_MAX_FUTURE_SKEW_MS, eventTime, trustedSourceIP } from "@k8s-audit/core";
import type { CompiledWindowRule, Predicate } from "@k8s-audit/rules";
import { type Bucket, countEvent, type EventFacts, factsOf, mergeBucket, newBucket, type PartialRecord } from "./bucket.js";
import { evaluateCount } from "./count.js";
import { GRACE_PERIOD_WINDOWS, isClosed } from "./grace.js";
import { evaluateSequence } from "./sequence.js";
import { evaluateSilence, silenceAlert } from "./silence.js";
import { CountMinSketch } from "./sketch.js";
import { firstValue, keyFunction, type RuleState, windowLength } from "./state.js";
import type { WindowGauges, WindowStats } from "./stats.js";

export interface WindowEngineOptions {
  /** Exact keys per rule and window; later keys are counted in a sketch and promoted once they reach the rule's floor. */
  maxKeysPerWindow?: number;
  /** Keys remembered across windows per rule (baselines, sequence progress, silence); least recently seen go first. */
  maxTrackedKeys?: number;
  /** Wall clock for silence and for the allowed skew (ms since the epoch). */
  clock?: () => number;
  /**
   * How far ahead of the clock an event may be stamped and still count (DEFAULT_MAX_FUTURE_SKEW_MS): a later one is
   * judged by the per-event rules but never counted in windows nor moves the watermark.
   */
  maxFutureSkewMs?: number;
  /** How many window lengths a window stays open after its end for late events (GRACE_PERIOD_WINDOWS). */
  graceWindows?: number;
}

/** Shared empty result: most events close no window, and a fresh array per event is garbage to collect. */
const NO_ALERTS: Alert[] = [];
/** The steps of a sequence rule the event matches. */
function stepsMatched(steps: readonly Predicate[], event: AuditEvent): number[] {
  const matched: number[] = [];
  for (let i = 0; i < steps.length; i++) if ((steps[i] as Predicate)(event)) matched.push(i);
  return matched;
}

/**
 * What several rules may need from one event, worked out at most once per event and only when a rule needs it:
 * whether it is the cluster's routine, its trusted source address, the facts a new bucket keeps.
 */
class EventMemo {
  event = {} as AuditEvent;
  time = 0;
  private routine: boolean | undefined;
  private ip: string | undefined | null = null;
  private eventFacts: EventFacts | undefined;

  reset(event: AuditEvent, time: number): this {
    this.event = event;
    this.time = time;
    this.routine = undefined;
    this.ip = null;
    this.eventFacts = undefined;
    return this;
  }

  /** The pack shares one system_routine predicate, so its answer holds for every rule that tests it. */
  isRoutine(isSystemRoutine: Predicate): boolean {
    this.routine ??= isSystemRoutine(this.event);
    return this.routine;
  }

  sourceIP(): string | undefined {
    if (this.ip === null) this.ip = trustedSourceIP(this.event);
    return this.ip;
  }

  facts(): EventFacts {
    this.eventFacts ??= factsOf(this.event, this.time);
    return this.eventFacts;
  }
}

/**
 * Event-time windows for the timed rules (counts, sequences, silence). A window closes once the watermark (the stream's
 * event time) is one window past its end, so events arriving out of order by up to a window change nothing; later ones
 * are counted as late and dropped. Windows close in time order and keys are visited in sorted order, so baselines,
 * sequences and alert ids are the same however the input is ordered, replayed or partitioned.
 *
 * Used three ways: `offer` (one process sees everything: embedded, replay), or split for scale-out: `collect` +
 * `drainPartials` on the instance that reads events, `merge` + `advance` on the instance that owns the key's partition.
 */
export class WindowEngine {
  private readonly states: RuleState[];
  private readonly byId = new Map<string, RuleState>();
  private watermark = Number.NEGATIVE_INFINITY;
  /** The earliest event time seen: warm-up counts windows from here. */
  private streamStart = Number.POSITIVE_INFINITY;
  readonly stats: WindowStats = { lateEvents: 0, evictedKeys: 0, sketchedEvents: 0, promotedKeys: 0, droppedEvents: 0, futureEvents: 0 };
  private readonly clock: () => number;
  private readonly maxFutureSkewMs: number;
  private readonly graceWindows: number;
  /** Reused for every event: collect allocates nothing per event for what several rules share. */
  private readonly memo = new EventMemo();

  constructor(
    rules: readonly CompiledWindowRule[],
    private readonly options: WindowEngineOptions = {},
  ) {
    this.clock = options.clock ?? Date.now;
    this.maxFutureSkewMs = options.maxFutureSkewMs ?? DEFAULT_MAX_FUTURE_SKEW_MS;
    this.graceWindows = options.graceWindows ?? GRACE_PERIOD_WINDOWS;
    this.states = rules.map((rule) => {
      const d = rule.definition;
      const state: RuleState = {
        rule,
        windowMs: windowLength(d),
        lean: d.kind !== "window",
        keyOf: keyFunction(d.group_by.map(firstValue)),
        distinctOf: d.kind === "window" && d.distinct ? firstValue(d.distinct) : undefined,
        windows: new Map(),
        sketches: new Map(),
        baselines: new Map(),
        chains: new Map(),
        lastClosed: new Map(),
        arrivals: new Map(),
        reported: new Map(),
        oldestOpen: Number.POSITIVE_INFINITY,
        firstOffsets: new Map(),
      };
      this.byId.set(d.id, state);
      return state;
    });
  }

  get rules(): readonly CompiledWindowRule[] {
    return this.states.map((s) => s.rule);
  }

  /** The counters, and how many keys are held now (open windows; remembered across windows). */
  gauges(): WindowGauges {
    let openKeys = 0;
    let rememberedKeys = 0;
    for (const s of this.states) {
      for (const buckets of s.windows.values()) openKeys += buckets.size;
      rememberedKeys += s.baselines.size + s.chains.size + s.lastClosed.size + s.arrivals.size;
    }
    return { ...this.stats, openKeys, rememberedKeys };
  }

  /** One process, whole stream: counts the event and closes the windows its time has passed. */
  offer(event: AuditEvent): Alert[] {
    const time = Date.parse(eventTime(event));
    if (!this.collect(event, time) || time <= this.watermark) return NO_ALERTS;
    return this.advance(time);
  }

  /** Whether an event stamped `time` is within the allowed skew of the clock (else it is counted as a future event). */
  private trusts(time: number): boolean {
    if (time <= this.clock() + this.maxFutureSkewMs) return true;
    this.stats.futureEvents++;
    return false;
  }

  /** Counts the event into its open windows without closing any; false when its time is unusable or untrusted. */
  collect(event: AuditEvent, time = Date.parse(eventTime(event))): boolean {
    if (Number.isNaN(time) || !this.trusts(time)) return false;
    if (time < this.streamStart) this.streamStart = time;
    const memo = this.memo.reset(event, time);
    for (const state of this.states) if (this.admits(state, memo)) this.countInto(state, memo);
    return true;
  }

  /** Whether the rule counts the event at all: its condition, and the cluster's routine when the rule leaves it out. */
  private admits(state: RuleState, memo: EventMemo): boolean {
    const rule = state.rule;
    if (rule.matches && !rule.matches(memo.event)) return false;
    return !(rule.isSystemRoutine && memo.isRoutine(rule.isSystemRoutine));
  }

  /** Counts the event into the rule's window for its time (late ones are counted as late and dropped). */
  private countInto(state: RuleState, memo: EventMemo): void {
    const { event, time } = memo;
    const rule = state.rule;
    const start = Math.floor(time / state.windowMs) * state.windowMs;
    // Too late: its window has already been closed and reported.
    if (isClosed(start, state.windowMs, this.watermark, this.graceWindows)) {
      this.stats.lateEvents++;
      return;
    }
    const key = state.keyOf(event);
    const buckets = state.lastStart === start ? (state.lastBuckets as Map<string, Bucket>) : this.windowOf(state, start);
    const bucket = buckets.get(key) ?? this.bucketFor(state, start, key, memo.facts(), 1);
    if (!bucket) return;
    const steps = rule.steps ? stepsMatched(rule.steps, event) : undefined;
    const distinct = state.distinctOf?.(event);
    const hit = rule.ratio ? rule.ratio(event) : false;
    const ip = memo.sourceIP();
    if (countEvent(bucket, time, event.auditID, event.verb, event.objectRef?.resource, ip, distinct, hit, steps, state.lean)) {
      bucket.first = memo.facts();
    }
    if (rule.definition.kind === "silence") {
      const seen = state.arrivals.get(key);
      this.arrived(state, key, seen && time <= seen.facts.time ? seen.facts : memo.facts(), 1);
    }
  }

  /** Takes every open bucket as a partial record (the reading side of a scale-out deployment), leaving none open. */
  drainPartials(): PartialRecord[] {
    const out: PartialRecord[] = [];
    for (const state of this.states) {
      for (const [start, buckets] of state.windows)
        for (const [key, bucket] of buckets) out.push({ rule: state.rule.definition.id, key, start, bucket });
      state.windows.clear();
      state.sketches.clear();
      state.lastStart = undefined;
      state.arrivals.clear();
      state.oldestOpen = Number.POSITIVE_INFINITY;
    }
    return out;
  }

  /** Adds another instance's partial bucket (the owning side of a scale-out deployment). */
  merge(record: PartialRecord, offset?: bigint): void {
    const state = this.byId.get(record.rule);
    if (!state) return;
    const from = record.bucket;
    // Stream time for warm-up comes from the reading side's ticks (noteStreamTime), not from partial counts: after a
    // restart mid-stream, old partials say nothing about how long this engine has been learning.
    if (isClosed(record.start, state.windowMs, this.watermark, this.graceWindows)) {
      this.stats.lateEvents += from.count;
      return;
    }
    if (offset !== undefined && !state.firstOffsets.has(record.start)) state.firstOffsets.set(record.start, offset);
    const bucket = this.bucketFor(state, record.start, record.key, from.first, from.count, from);
    if (bucket && bucket !== from) mergeBucket(bucket, from);
    if (bucket && state.rule.definition.kind === "silence") {
      // The partial's newest time, with its first event's facts (the bucket keeps no other).
      this.arrived(state, record.key, { ...from.first, time: from.maxTime }, from.count);
    }
  }

  /**
   * The offset of the first record merged into a window still open (merge's offsets), if any: committing no further
   * than this means a restarted owner reads every open window's records again and rebuilds them exactly.
   */
  oldestOpenOffset(): bigint | undefined {
    let oldest: bigint | undefined;
    for (const s of this.states) for (const o of s.firstOffsets.values()) if (oldest === undefined || o < oldest) oldest = o;
    return oldest;
  }

  /** Notes stream time this engine has seen all of since (a tick from the reading side), for warm-up. */
  noteStreamTime(time: number): void {
    if (time < this.streamStart) this.streamStart = time;
  }

  /** Moves the watermark forward (never back) and closes the windows it has passed by more than their lateness. */
  advance(watermark: number): Alert[] {
    if (watermark > this.watermark) this.watermark = watermark;
    return this.close((start, windowMs) => isClosed(start, windowMs, this.watermark, this.graceWindows));
  }

  /** Closes every open window (end of a replay or a test). */
  flush(): Alert[] {
    return this.close(() => true);
  }

  /** Silence by the clock: keys whose last arrival is older than their rule's gap, each reported once per silence. */
  idle(now = this.clock()): Alert[] {
    const alerts: Alert[] = [];
    for (const state of this.states) {
      const def = state.rule.definition;
      if (def.kind !== "silence") continue;
      for (const [key, { facts, wall, events }] of state.arrivals) {
        if (events < def.min_events || now - wall <= def.gap * 1000 || state.reported.get(key) === facts.time) continue;
        state.reported.set(key, facts.time);
        alerts.push(silenceAlert(state, def, key, facts, facts.time, now));
      }
    }
    return alerts;
  }

  private arrived(state: RuleState, key: string, facts: EventFacts, events: number): void {
    const wall = this.clock();
    const previous = state.arrivals.get(key);
    if (previous) {
      // Updated in place: silence keys are few (clusters) and seen on every event.
      if (facts.time > previous.facts.time) previous.facts = facts;
      previous.wall = wall;
      previous.events += events;
      return;
    }
    state.arrivals.set(key, { facts, wall, events });
    this.evict(state.arrivals);
  }

  /** The open window's buckets, created if new; remembered as the rule's current window (most events land there). */
  private windowOf(state: RuleState, start: number): Map<string, Bucket> {
    let buckets = state.windows.get(start);
    if (!buckets) {
      buckets = new Map();
      state.windows.set(start, buckets);
      if (start < state.oldestOpen) state.oldestOpen = start;
    }
    state.lastStart = start;
    state.lastBuckets = buckets;
    return buckets;
  }

  /**
   * The key's bucket in the window, created if the window still has room. Past the cap, the key is counted in the
   * window's sketch and gets a bucket only once its estimate reaches the rule's floor.
   */
  private bucketFor(state: RuleState, start: number, key: string, facts: EventFacts, weight: number, ready?: Bucket): Bucket | undefined {
    const buckets = this.windowOf(state, start);
    const existing = buckets.get(key);
    if (existing) return existing;
    const def = state.rule.definition;
    const withDistinct = def.kind === "window" && def.distinct !== undefined;
    let bucket: Bucket | undefined;
    if (buckets.size < (this.options.maxKeysPerWindow ?? DEFAULT_CONFIG.K8S_AUDIT_WINDOW_MAX_KEYS)) {
      bucket = ready ?? newBucket(facts, withDistinct);
    } else if (def.kind !== "window" || def.distinct !== undefined || def.ratio !== undefined) {
      this.stats.droppedEvents += weight;
      return undefined;
    } else {
      let sketch = state.sketches.get(start);
      if (!sketch) {
        sketch = new CountMinSketch();
        state.sketches.set(start, sketch);
      }
      const estimate = sketch.add(key, weight);
      if (estimate < def.threshold.min) {
        this.stats.sketchedEvents += weight;
        return undefined;
      }
      // A heavy hitter in the tail: exact from here on, starting from the sketch's (never low) estimate.
      this.stats.promotedKeys++;
      bucket = newBucket(facts, false);
      bucket.count = estimate - weight;
    }
    buckets.set(key, bucket);
    return bucket;
  }

  private close(due: (start: number, windowMs: number) => boolean): Alert[] {
    const alerts: Alert[] = [];
    for (const state of this.states) {
      if (!due(state.oldestOpen, state.windowMs)) continue;
      const starts = [...state.windows.keys()].filter((s) => due(s, state.windowMs)).sort((a, b) => a - b);
      for (const start of starts) {
        const buckets = state.windows.get(start) as Map<string, Bucket>;
        state.windows.delete(start);
        state.firstOffsets.delete(start);
        if (state.lastStart === start) state.lastStart = undefined;
        state.sketches.delete(start);
        const found = this.evaluate(state, start, buckets);
        alerts.push(...found);
      }
      state.oldestOpen = Number.POSITIVE_INFINITY;
      for (const s of state.windows.keys()) if (s < state.oldestOpen) state.oldestOpen = s;
    }
    return alerts.length ? alerts : NO_ALERTS;
  }

  private evaluate(state: RuleState, start: number, buckets: Map<string, Bucket>): Alert[] {
    const alerts: Alert[] = [];
    // Keys in a stable order, so what is remembered and evicted does not depend on arrival order.
    const keys = [...buckets.keys()].sort();
    const def = state.rule.definition;
    for (const key of keys) {
      const bucket = buckets.get(key) as Bucket;
      const alert =
        def.kind === "window"
          ? evaluateCount(state, def, this.streamStart, start, key, bucket)
          : def.kind === "sequence"
            ? evaluateSequence(state, def, key, bucket)
            : evaluateSilence(state, def, key, bucket);
      if (alert) alerts.push(...alert);
    }
    if (state.baselines.size) this.evict(state.baselines);
    if (state.chains.size) this.evict(state.chains);
    if (state.lastClosed.size) this.evict(state.lastClosed);
    return alerts;
  }

  private evict(map: Map<string, unknown>): void {
    const cap = this.options.maxTrackedKeys ?? DEFAULT_CONFIG.K8S_AUDIT_WINDOW_MAX_TRACKED_KEYS;
    while (map.size > cap) {
      map.delete(map.keys().next().value as string);
      this.stats.evictedKeys++;
    }
  }
}
