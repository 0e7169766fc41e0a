import {
  type Alert,
  type AuditEvent,
  alertId,
  DEFAULT_MAX_FUTURE_SKEW_MS,
  eventTime,
  redactRequestURI,
  trustedSourceIP,
} from "@k8s-audit/core";
import { alertEnvelope, type CompiledWindowRule, compileVisitor, type Predicate, type TimedRuleDefinition } from "@k8s-audit/rules";
import {
  type Bucket,
  countEvent,
  type EventFacts,
  factsOf,
  mergeBucket,
  newBucket,
  type PartialRecord,
  topContributors,
} from "./bucket.js";
import { CountMinSketch } from "./sketch.js";
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
}

interface ChainLink {
  start: number;
  ids: string[];
}

interface RuleState {
  rule: CompiledWindowRule;
  windowMs: number;
  /** Sequences and silence need counts, times and steps only. */
  lean: boolean;
  keyOf: (e: AuditEvent) => string;
  distinctOf?: (e: AuditEvent) => string | undefined;
  /** Open windows by start time, each with its buckets by key. */
  windows: Map<number, Map<string, Bucket>>;
  sketches: Map<number, CountMinSketch>;
  /** Window rules with a baseline: each key's moving average. */
  baselines: Map<string, { average: number; lastWindow: number }>;
  /** Sequence rules: per key, the newest chain that reached each step. */
  chains: Map<string, (ChainLink | undefined)[]>;
  /** Silence rules: per key, the newest event in closed windows, and the newest event and wall time of any arrival. */
  lastClosed: Map<string, { time: number; events: number }>;
  arrivals: Map<string, { facts: EventFacts; wall: number; events: number }>;
  reported: Map<string, number>;
  /** Start of the oldest open window, so most events cost one comparison to know nothing closes. */
  oldestOpen: number;
  /** Per open window: the offset of the first partial record merged into it (scale-out), to hold commits back to. */
  firstOffsets: Map<number, bigint>;
  /** The window most recently counted into, and its buckets. */
  lastStart?: number;
  lastBuckets?: Map<string, Bucket>;
}

/** Shared empty result: most events close no window, and a fresh array per event is garbage to collect. */
const NO_ALERTS: Alert[] = [];
/** Sequences and silence are bucketed by minute; the same one-window lateness applies. */
const SEQUENCE_BUCKET_MS = 60_000;

/** The first value a path reaches, as a string (the conditions' visitor, stopping at the first value). */
function firstValue(path: string): (e: AuditEvent) => string | undefined {
  if (path === "sourceIP") return (e) => trustedSourceIP(e);
  const visit = compileVisitor(path);
  // One capturing callback for the rule, not one per event.
  let found: unknown;
  const capture = (v: unknown) => {
    found = v;
    return true;
  };
  return (e) => {
    found = undefined;
    visit(e, capture);
    return found === undefined ? undefined : String(found);
  };
}

/** What a missing group-by value is counted under: an event without a user or an address still counts. */
export const MISSING_KEY_PART = "(none)";

/** The group-by key: the parts joined with "|", a missing part as MISSING_KEY_PART. */
function keyFunction(parts: ((e: AuditEvent) => string | undefined)[]): (e: AuditEvent) => string {
  return (e) => {
    let key = "";
    for (let i = 0; i < parts.length; i++) {
      const v = (parts[i] as (e: AuditEvent) => string | undefined)(e) ?? MISSING_KEY_PART;
      key = i === 0 ? v : `${key}|${v}`;
    }
    return key;
  };
}

function windowLength(definition: TimedRuleDefinition): number {
  if (definition.kind === "window") return definition.window * 1000;
  if (definition.kind === "silence") return definition.gap * 1000;
  return SEQUENCE_BUCKET_MS;
}

/** Least recently updated first: re-inserting moves a key to the end. */
function touch<V>(map: Map<string, V>, key: string, value: V): void {
  map.delete(key);
  map.set(key, value);
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

  constructor(
    rules: readonly CompiledWindowRule[],
    private readonly options: WindowEngineOptions = {},
  ) {
    this.clock = options.clock ?? Date.now;
    this.maxFutureSkewMs = options.maxFutureSkewMs ?? DEFAULT_MAX_FUTURE_SKEW_MS;
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
    // Computed at most once per event, and only when a rule needs them: routine or not, the trusted source
    // address, the facts a new bucket keeps.
    let system: boolean | undefined;
    let facts: EventFacts | undefined;
    let ip: string | undefined | null = null;
    for (const state of this.states) {
      const rule = state.rule;
      if (rule.matches && !rule.matches(event)) continue;
      if (rule.isSystemRoutine) {
        system ??= rule.isSystemRoutine(event);
        if (system) continue;
      }
      const start = Math.floor(time / state.windowMs) * state.windowMs;
      // Too late: its window has already been closed and reported.
      if (start + 2 * state.windowMs <= this.watermark) {
        this.stats.lateEvents++;
        continue;
      }
      const key = state.keyOf(event);
      const buckets = state.lastStart === start ? (state.lastBuckets as Map<string, Bucket>) : this.windowOf(state, start);
      let bucket = buckets.get(key);
      if (!bucket) {
        facts ??= factsOf(event, time);
        bucket = this.bucketFor(state, start, key, facts, 1);
        if (!bucket) continue;
      }
      let steps: number[] | undefined;
      if (rule.steps) {
        steps = [];
        for (let i = 0; i < rule.steps.length; i++) if ((rule.steps[i] as Predicate)(event)) steps.push(i);
      }
      if (ip === null) ip = trustedSourceIP(event);
      const distinct = state.distinctOf?.(event);
      const hit = rule.ratio ? rule.ratio(event) : false;
      if (countEvent(bucket, time, event.auditID, event.verb, event.objectRef?.resource, ip, distinct, hit, steps, state.lean)) {
        facts ??= factsOf(event, time);
        bucket.first = facts;
      }
      if (rule.definition.kind === "silence") {
        const seen = state.arrivals.get(key);
        if (seen && time <= seen.facts.time) this.arrived(state, key, seen.facts, 1);
        else {
          facts ??= factsOf(event, time);
          this.arrived(state, key, facts, 1);
        }
      }
    }
    return true;
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
    if (record.start + 2 * state.windowMs <= this.watermark) {
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
    return this.close((start, windowMs) => start + 2 * windowMs <= this.watermark);
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
        alerts.push(this.silenceAlert(state, def, key, facts, facts.time, now));
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
    if (buckets.size < (this.options.maxKeysPerWindow ?? 10_000)) {
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
          ? this.evaluateCount(state, def, start, key, bucket)
          : def.kind === "sequence"
            ? this.evaluateSequence(state, def, key, bucket)
            : this.evaluateSilence(state, def, key, bucket);
      if (alert) alerts.push(...alert);
    }
    if (state.baselines.size) this.evict(state.baselines);
    if (state.chains.size) this.evict(state.chains);
    if (state.lastClosed.size) this.evict(state.lastClosed);
    return alerts;
  }

  private evaluateCount(
    state: RuleState,
    def: Extract<TimedRuleDefinition, { kind: "window" }>,
    start: number,
    key: string,
    bucket: Bucket,
  ): Alert[] | undefined {
    const t = def.threshold;
    const value = bucket.distinct ? bucket.distinct.size : def.ratio ? bucket.hits : bucket.count;
    let baseline = 0;
    let aboveBaseline = true;
    if (t.baseline_factor !== undefined) {
      const learnedWindows = (start - Math.floor(this.streamStart / state.windowMs) * state.windowMs) / state.windowMs;
      const past = state.baselines.get(key);
      const missed = past ? Math.max(0, (start - past.lastWindow) / state.windowMs - 1) : 0;
      baseline = past ? past.average * (1 - t.alpha) ** missed : 0;
      aboveBaseline = learnedWindows >= t.warmup && value >= t.baseline_factor * baseline;
      touch(state.baselines, key, { average: t.alpha * value + (1 - t.alpha) * baseline, lastWindow: start });
    }
    const share = def.ratio ? bucket.hits / bucket.count : 1;
    if (value < t.min || !aboveBaseline || (def.ratio && share < def.ratio.min)) return undefined;
    const what = def.distinct
      ? `${value} distinct ${def.distinct}`
      : def.ratio
        ? `${value} of ${bucket.count} requests (${(share * 100).toFixed(1)}%)`
        : `${value} requests`;
    const base = t.baseline_factor !== undefined ? ` (baseline ${baseline.toFixed(1)})` : "";
    return [
      this.buildAlert(
        state,
        key,
        bucket.first,
        start,
        start + state.windowMs,
        value,
        `${key} made ${what} in ${def.window} s${base}`,
        bucket.sample,
        {
          baseline: baseline.toFixed(2),
          ...(def.ratio ? { share: share.toFixed(4), requests: String(bucket.count) } : {}),
          top_verbs: topContributors(bucket, "verbs"),
          top_resources: topContributors(bucket, "resources"),
          top_source_ips: topContributors(bucket, "ips"),
        },
      ),
    ];
  }

  /** Runs the key's step hits of this window, in event-time order, through the progress carried from earlier windows. */
  private evaluateSequence(
    state: RuleState,
    def: Extract<TimedRuleDefinition, { kind: "sequence" }>,
    key: string,
    bucket: Bucket,
  ): Alert[] | undefined {
    if (!bucket.steps?.length) return undefined;
    const n = def.steps.length;
    const within = def.within * 1000;
    // Same event matching several steps: the later step first, so one event never completes a sequence by itself.
    const hits = [...bucket.steps].sort(
      (a, b) => a.time - b.time || (a.auditID < b.auditID ? -1 : a.auditID > b.auditID ? 1 : b.step - a.step),
    );
    const chain = state.chains.get(key) ?? new Array<ChainLink | undefined>(n).fill(undefined);
    const alerts: Alert[] = [];
    for (const hit of hits) {
      let completed: ChainLink | undefined;
      if (def.ordered) {
        if (hit.step === 0) chain[0] = { start: hit.time, ids: [hit.auditID] };
        else {
          const before = chain[hit.step - 1];
          if (before && hit.time - before.start <= within) {
            chain[hit.step] = { start: before.start, ids: [...before.ids, hit.auditID] };
            if (hit.step === n - 1) completed = chain[hit.step];
          }
        }
      } else {
        chain[hit.step] = { start: hit.time, ids: [hit.auditID] };
        const links = chain.filter((l): l is ChainLink => l !== undefined && hit.time - l.start <= within);
        if (links.length === n) {
          const first = Math.min(...links.map((l) => l.start));
          completed = { start: first, ids: links.sort((a, b) => a.start - b.start).flatMap((l) => l.ids) };
        }
      }
      if (completed) {
        chain.fill(undefined);
        const names = def.steps.map((s) => s.name).join(" → ");
        alerts.push(
          this.buildAlert(
            state,
            key,
            bucket.first,
            completed.start,
            hit.time,
            n,
            `${key}: ${names} within ${def.within} s`,
            completed.ids,
            {
              steps: names,
            },
          ),
        );
      }
    }
    touch(state.chains, key, chain);
    return alerts.length ? alerts : undefined;
  }

  /** A gap in event time before this window's first event (archived logs, or a live stream that resumed). */
  private evaluateSilence(
    state: RuleState,
    def: Extract<TimedRuleDefinition, { kind: "silence" }>,
    key: string,
    bucket: Bucket,
  ): Alert[] | undefined {
    const last = state.lastClosed.get(key);
    touch(state.lastClosed, key, {
      time: Math.max(last?.time ?? bucket.maxTime, bucket.maxTime),
      events: (last?.events ?? 0) + bucket.count,
    });
    if (!last || last.events < def.min_events) return undefined;
    if (bucket.minTime - last.time <= def.gap * 1000 || state.reported.get(key) === last.time) return undefined;
    state.reported.set(key, last.time);
    return [this.silenceAlert(state, def, key, bucket.first, last.time, bucket.minTime)];
  }

  private silenceAlert(
    state: RuleState,
    def: Extract<TimedRuleDefinition, { kind: "silence" }>,
    key: string,
    facts: EventFacts,
    lastTime: number,
    until: number,
  ): Alert {
    const seconds = Math.round((until - lastTime) / 1000);
    return this.buildAlert(
      state,
      key,
      facts,
      lastTime,
      until,
      1,
      `${key} sent no audit events for ${seconds} s after ${new Date(lastTime).toISOString()} (gap allowed: ${def.gap} s)`,
      [facts.auditID],
      { silent_seconds: String(seconds) },
    );
  }

  private evict(map: Map<string, unknown>): void {
    const cap = this.options.maxTrackedKeys ?? 50_000;
    while (map.size > cap) {
      map.delete(map.keys().next().value as string);
      this.stats.evictedKeys++;
    }
  }

  private buildAlert(
    state: RuleState,
    key: string,
    facts: EventFacts,
    startMs: number,
    endMs: number,
    count: number,
    what: string,
    auditIDs: string[],
    labels: Record<string, string>,
  ): Alert {
    const def = state.rule.definition;
    const cluster = facts.cluster;
    const startIso = new Date(startMs).toISOString();
    const endIso = new Date(endMs).toISOString();
    const byPrincipal = def.group_by.includes("user.username") && facts.user;
    const byAddress = def.group_by.includes("sourceIP") && facts.ip;
    const byAgent = def.group_by.includes("userAgent") && facts.userAgent;
    return {
      ...alertEnvelope(def, {
        id: alertId(def.id, cluster, key, startIso),
        timestamp: endIso,
        message: `${def.name}: ${what}`,
        action: facts.verb,
        outcome: "unknown",
        created: endIso,
        start: startIso,
        end: endIso,
        count: Math.max(1, count),
      }),
      // Only what the key fixes is common to the window's events; the rest is in the top-contributor labels.
      ...(byPrincipal ? { user: { name: facts.user } } : {}),
      ...(byAddress ? { source: { ip: facts.ip as string } } : {}),
      ...(byAgent ? { user_agent: { original: facts.userAgent as string } } : {}),
      orchestrator: { type: "kubernetes", cluster: { name: cluster } },
      related: { user: byPrincipal ? [facts.user as string] : [], ip: byAddress ? [facts.ip as string] : [] },
      labels: { window_key: key, window_seconds: String(state.windowMs / 1000), ...labels },
      kubernetes: {
        audit: {
          auditID: auditIDs.length ? auditIDs : [facts.auditID],
          verb: facts.verb,
          // Scrubbed like every alert's URI (docs/redaction.md).
          requestURI: redactRequestURI(facts.requestURI).uri,
          stage: facts.stage,
        },
      },
    };
  }
}
