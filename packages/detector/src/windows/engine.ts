import { type Alert, type AuditEvent, alertId, ecsEntities, eventTime, SEVERITY_SCORES, trustedSourceIP } from "@k8s-audit/core";
import { threatOf } from "../alert-builder.js";
import { compileVisitor, type Predicate, pathSegments } from "../condition.js";
import type { WindowRuleDefinition } from "./window-rule.js";

export interface CompiledWindowRule {
  readonly definition: WindowRuleDefinition;
  readonly source: string;
  /** The rule's own condition. */
  readonly matches: Predicate;
  /** The system_component macro, when the rule excludes system components: one shared predicate, tested once per event. */
  readonly isSystemComponent?: Predicate;
}

interface Bucket {
  count: number;
  distinct?: Set<string>;
  verbs: Map<string, number>;
  resources: Map<string, number>;
  ips: Map<string, number>;
  auditIDs: string[];
  first: AuditEvent;
}

interface Baseline {
  average: number;
  lastWindow: number;
}

interface RuleState {
  rule: CompiledWindowRule;
  windowMs: number;
  keyOf: (e: AuditEvent) => string | undefined;
  distinctOf?: (e: AuditEvent) => string | undefined;
  /** Open windows by start time, each with its buckets by key. */
  windows: Map<number, Map<string, Bucket>>;
  baselines: Map<string, Baseline>;
  firstWindow?: number;
  /** Start of the oldest open window, so most events cost one comparison to know nothing closes. */
  oldestOpen: number;
}

const MAX_DISTINCT = 10_000;
/** Shared empty result: most events close no window, and a fresh array per event is garbage to collect. */
const NO_ALERTS: Alert[] = [];
const MAX_SAMPLE_IDS = 20;

/** The first value a path reaches, as a string: a plain property walk, falling back to the any-element visitor at arrays. */
function firstValue(path: string): (e: AuditEvent) => string | undefined {
  if (path === "sourceIP") return (e) => trustedSourceIP(e);
  const segments = pathSegments(path);
  const visit = compileVisitor(path);
  const viaVisitor = (e: AuditEvent) => {
    let out: string | undefined;
    visit(e, (v) => {
      out = String(v);
      return true;
    });
    return out;
  };
  return (e) => {
    let node: unknown = e;
    for (const segment of segments) {
      if (node === null || node === undefined) return undefined;
      if (typeof node !== "object" || Array.isArray(node) || segment === "*" || segment === "~keys") return viaVisitor(e);
      node = (node as Record<string, unknown>)[segment];
    }
    if (node === null || node === undefined) return undefined;
    return Array.isArray(node) || typeof node === "object" ? viaVisitor(e) : String(node);
  };
}

/** The group-by key: the parts joined with "|", or undefined when any part is missing. */
function keyFunction(parts: ((e: AuditEvent) => string | undefined)[]): (e: AuditEvent) => string | undefined {
  return (e) => {
    let key = "";
    for (let i = 0; i < parts.length; i++) {
      const v = (parts[i] as (e: AuditEvent) => string | undefined)(e);
      if (v === undefined) return undefined;
      key = i === 0 ? v : `${key}|${v}`;
    }
    return key;
  };
}

const bump = (m: Map<string, number>, k: string | undefined, weight: number) => {
  if (k !== undefined) m.set(k, (m.get(k) ?? 0) + weight);
};
const top = (m: Map<string, number>, n = 3) =>
  [...m]
    .sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1))
    .slice(0, n)
    .map(([k, c]) => `${k}=${c}`)
    .join(",");

/**
 * Event-time tumbling windows for the windowed rules. A window closes once the stream's event time (the watermark: the
 * newest stageTimestamp seen) is one window past its end, so events arriving out of order by up to a window change
 * nothing; later ones are counted as late and dropped. Each key's baseline is a moving average over its past windows
 * (windows it was absent from count as zero), updated in window order, so the same input gives the same alerts however
 * it is ordered or replayed.
 */
export class WindowEngine {
  private readonly states: RuleState[];
  private watermark = Number.NEGATIVE_INFINITY;
  lateEvents = 0;
  evictedKeys = 0;

  constructor(
    rules: readonly CompiledWindowRule[],
    private readonly options: { maxKeysPerRule?: number } = {},
  ) {
    this.states = rules.map((rule) => ({
      rule,
      windowMs: rule.definition.window * 1000,
      keyOf: keyFunction(rule.definition.group_by.map(firstValue)),
      distinctOf: rule.definition.distinct ? firstValue(rule.definition.distinct) : undefined,
      windows: new Map(),
      baselines: new Map(),
      oldestOpen: Number.POSITIVE_INFINITY,
    }));
  }

  get rules(): readonly CompiledWindowRule[] {
    return this.states.map((s) => s.rule);
  }

  offer(event: AuditEvent): Alert[] {
    const time = Date.parse(eventTime(event));
    if (Number.isNaN(time)) return NO_ALERTS;
    // Whether the event comes from a system component: computed at most once per event (no closure on the hot path).
    let system: boolean | undefined;
    for (const state of this.states) {
      const start = Math.floor(time / state.windowMs) * state.windowMs;
      // Too late: its window has already been closed and reported.
      if (!state.rule.matches(event)) continue;
      if (state.rule.isSystemComponent) {
        system ??= state.rule.isSystemComponent(event);
        if (system) continue;
      }
      if (start + 2 * state.windowMs <= this.watermark) {
        this.lateEvents++;
        continue;
      }
      const key = state.keyOf(event);
      if (key === undefined) continue;
      let buckets = state.windows.get(start);
      if (!buckets) {
        buckets = new Map();
        state.windows.set(start, buckets);
        if (start < state.oldestOpen) state.oldestOpen = start;
      }
      let bucket = buckets.get(key);
      if (!bucket) {
        bucket = {
          count: 0,
          verbs: new Map(),
          resources: new Map(),
          ips: new Map(),
          auditIDs: [],
          first: event,
          ...(state.distinctOf ? { distinct: new Set<string>() } : {}),
        };
        buckets.set(key, bucket);
      }
      bucket.count++;
      if (bucket.distinct && bucket.distinct.size < MAX_DISTINCT) {
        const v = state.distinctOf?.(event);
        if (v !== undefined) bucket.distinct.add(v);
      }
      // Top contributors: exact for the first 64 events of a bucket, then every 4th event weighted 4: floods are
      // where the per-event cost matters, and their proportions survive sampling.
      if (bucket.count <= 64 || (bucket.count & 3) === 0) {
        const weight = bucket.count <= 64 ? 1 : 4;
        bump(bucket.verbs, event.verb, weight);
        bump(bucket.resources, event.objectRef?.resource, weight);
        bump(bucket.ips, trustedSourceIP(event), weight);
      }
      if (bucket.auditIDs.length < MAX_SAMPLE_IDS) bucket.auditIDs.push(event.auditID);
    }
    if (time <= this.watermark) return NO_ALERTS;
    this.watermark = time;
    return this.close((start, windowMs) => start + 2 * windowMs <= this.watermark);
  }

  /** Closes every open window (end of a replay). */
  flush(): Alert[] {
    return this.close(() => true);
  }

  private close(due: (start: number, windowMs: number) => boolean): Alert[] {
    const alerts: Alert[] = [];
    for (const state of this.states) {
      if (!due(state.oldestOpen, state.windowMs)) continue;
      const starts = [...state.windows.keys()].filter((s) => due(s, state.windowMs)).sort((a, b) => a - b);
      for (const start of starts) {
        const buckets = state.windows.get(start) as Map<string, Bucket>;
        state.windows.delete(start);
        state.firstWindow ??= start;
        alerts.push(...this.evaluateWindow(state, start, buckets));
      }
      state.oldestOpen = Math.min(Number.POSITIVE_INFINITY, ...state.windows.keys());
    }
    return alerts;
  }

  private evaluateWindow(state: RuleState, start: number, buckets: Map<string, Bucket>): Alert[] {
    const def = state.rule.definition;
    const t = def.threshold;
    const alerts: Alert[] = [];
    const learnedWindows = (start - (state.firstWindow ?? start)) / state.windowMs;
    // Keys in a stable order, so baseline evictions do not depend on arrival order.
    for (const key of [...buckets.keys()].sort()) {
      const bucket = buckets.get(key) as Bucket;
      const value = bucket.distinct ? bucket.distinct.size : bucket.count;
      const past = state.baselines.get(key);
      const missed = past ? Math.max(0, (start - past.lastWindow) / state.windowMs - 1) : 0;
      const baseline = past ? past.average * (1 - t.alpha) ** missed : 0;
      const aboveBaseline = t.baseline_factor === undefined || (learnedWindows >= t.warmup && value >= t.baseline_factor * baseline);
      if (value >= t.min && aboveBaseline) alerts.push(this.buildAlert(state, key, start, bucket, value, baseline));
      state.baselines.delete(key);
      state.baselines.set(key, { average: t.alpha * value + (1 - t.alpha) * baseline, lastWindow: start });
    }
    const cap = this.options.maxKeysPerRule ?? 50_000;
    while (state.baselines.size > cap) {
      const oldest = state.baselines.keys().next().value as string;
      state.baselines.delete(oldest);
      this.evictedKeys++;
    }
    return alerts;
  }

  private buildAlert(state: RuleState, key: string, start: number, bucket: Bucket, value: number, baseline: number): Alert {
    const def = state.rule.definition;
    const event = bucket.first;
    const cluster = event.cluster ?? "default";
    const startIso = new Date(start).toISOString();
    const endIso = new Date(start + state.windowMs).toISOString();
    const what = def.distinct ? `${value} distinct ${def.distinct}` : `${value} requests`;
    const base = def.threshold.baseline_factor !== undefined ? ` (baseline ${baseline.toFixed(1)})` : "";
    const entities = ecsEntities(event);
    return {
      "@timestamp": endIso,
      message: `${def.name}: ${key} made ${what} in ${def.window} s${base}`,
      event: {
        kind: "alert",
        id: alertId(def.id, cluster, key, startIso),
        category: def.category,
        type: def.type,
        action: event.verb,
        outcome: "unknown",
        severity: SEVERITY_SCORES[def.severity],
        risk_score: def.risk_score ?? SEVERITY_SCORES[def.severity],
        dataset: "k8s_audit.alert",
        module: "k8s_audit",
        provider: "kubernetes",
        created: endIso,
        start: startIso,
        end: endIso,
        count: value,
      },
      rule: {
        id: def.id,
        name: def.name,
        description: def.description,
        reference: def.references,
        ruleset: "k8s-audit-pipeline",
        version: def.version,
      },
      threat: threatOf(def.threat),
      ...(def.group_by.includes("user.username") && event.user.username ? { user: { name: event.user.username } } : {}),
      ...entities,
      // The window spans many objects: only the cluster is common to all of them.
      orchestrator: { type: "kubernetes", cluster: { name: cluster } },
      labels: {
        window_key: key,
        window_seconds: String(def.window),
        baseline: baseline.toFixed(2),
        top_verbs: top(bucket.verbs),
        top_resources: top(bucket.resources),
        top_source_ips: top(bucket.ips),
      },
      kubernetes: { audit: { auditID: bucket.auditIDs, verb: event.verb, requestURI: event.requestURI, stage: event.stage } },
    };
  }
}
