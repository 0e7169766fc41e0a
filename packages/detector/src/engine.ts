import { type Alert, type AuditEvent, DEFAULT_CONFIG, eventTime, requestFailed, SEVERITY_SCORES } from "@k8s-audit/core";
import { buildAlert, type CompiledRule, type CompiledWindowRule, countsInWindows, refusal, requestKey } from "@k8s-audit/rules";
import { ClusterWindows, StormAggregator, type WindowEngineOptions } from "@k8s-audit/windows";

export interface DetectorOptions {
  /** (rule, request) pairs remembered to keep one alert per request across its stages. */
  recentRequests?: number;
  /** Window in which repeats of an alert for one principal fold into one summary; 0 turns folding off. */
  stormWindowMs?: number;
  /** Windowed rules (floods, bursts), evaluated over event-time windows, each request once (see countsInWindows). */
  windowRules?: readonly CompiledWindowRule[];
  /** Options of each cluster's window engine (key caps, clock, allowed clock skew). */
  windowOptions?: WindowEngineOptions;
  /** How far ahead of the clock an event may be stamped and still drive windows and storms (DEFAULT_MAX_FUTURE_SKEW_MS). */
  maxFutureSkewMs?: number;
}

/** A rule that cannot apply to a failed request. */
const SKIP = Symbol("skip");

/** Never handed to callers: only compared by length and spread. */
const NONE: readonly Alert[] = [];

/** A refused attempt is reported for rules of this severity and above, one severity lower. */
const ATTEMPT_MIN_SCORE = SEVERITY_SCORES.medium;

/**
 * Evaluates events against the compiled rules. One request reaches us up to three times (one event per stage); a rule
 * fires at most once per request: by stage filtering, and by remembering recent (rule, request) pairs. Repeats of the
 * same alert for the same principal fold into one summary alert with a count (StormAggregator).
 */
export class Detector {
  /** Per stage: rules by the objectRef.resource they require, and the rules that take any resource. */
  private readonly byStage = new Map<string, { byResource: Map<string, CompiledRule[]>; anyResource: CompiledRule[] }>();
  /** The refusal reason of the event being judged (null: not worked out yet), shared by its rules. */
  private refused: string | undefined | null = null;
  /** Insertion-ordered, so the oldest entry is evicted first in O(1). */
  private readonly recent = new Set<string>();

  private readonly storms: StormAggregator | undefined;
  /** Whether this detector folds storms itself (off when the window stage folds them: scale-out). */
  get foldsStorms(): boolean {
    return this.storms !== undefined;
  }
  /** Timed rules, with one event-time clock per cluster: one cluster's clock never closes another's windows. */
  readonly windows: ClusterWindows | undefined;

  constructor(
    readonly rules: readonly CompiledRule[],
    private readonly options: DetectorOptions = {},
  ) {
    const window = options.stormWindowMs ?? DEFAULT_CONFIG.K8S_AUDIT_STORM_WINDOW_SECONDS * 1000;
    const skew = options.maxFutureSkewMs === undefined ? {} : { maxFutureSkewMs: options.maxFutureSkewMs };
    this.storms = window > 0 ? new StormAggregator(window, skew) : undefined;
    this.windows = options.windowRules?.length ? new ClusterWindows(options.windowRules, { ...skew, ...options.windowOptions }) : undefined;
    for (const rule of rules) {
      for (const stage of rule.definition.stages) {
        let index = this.byStage.get(stage);
        if (!index) {
          index = { byResource: new Map(), anyResource: [] };
          this.byStage.set(stage, index);
        }
        if (!rule.resources) index.anyResource.push(rule);
        else for (const resource of rule.resources) index.byResource.set(resource, [...(index.byResource.get(resource) ?? []), rule]);
      }
    }
    // Each resource's list also carries the rules for any resource, so evaluation walks one prebuilt array.
    for (const index of this.byStage.values()) {
      for (const [resource, list] of index.byResource) index.byResource.set(resource, [...list, ...index.anyResource]);
    }
  }

  /**
   * Judges one event (rules read the request view: the effective identity, the resulting object, see request.ts)
   * against every rule that can match it.
   * A request refused by authorization or admission that a medium or higher rule would have flagged raises that
   * rule's attempt alert, one severity lower, with the refusal reason.
   */
  evaluate(event: AuditEvent, now?: Date): Alert[] {
    const windowed = this.windows && countsInWindows(event) ? this.windows.offer(event) : NONE;
    const index = this.byStage.get(event.stage);
    if (!index) return windowed.length ? [...windowed] : [];
    const resource = event.objectRef?.resource;
    const specific = resource === undefined ? undefined : index.byResource.get(resource);
    const ok = !requestFailed(event);
    this.refused = null;
    let key: string | undefined;
    const alerts: Alert[] = [];
    for (const rule of specific ?? index.anyResource) {
      const attempt = this.attemptOf(rule, event, ok);
      if (attempt === SKIP || !rule.matches(event)) continue;
      key ??= requestKey(event);
      if (!this.firstTime(`${rule.definition.id}\u0000${key}`)) continue;
      this.emit(buildAlert(rule, event, now, attempt), event, alerts);
    }
    return windowed.length ? [...alerts, ...windowed] : alerts;
  }

  /**
   * SKIP when the rule's outcome does not fit the request's; for a refused request a rule on success only judges, the
   * refusal reason (an attempt alert, rules of medium and above); undefined otherwise.
   */
  private attemptOf(rule: CompiledRule, event: AuditEvent, ok: boolean): string | undefined | typeof SKIP {
    const outcome = rule.definition.outcome;
    if (ok) return outcome === "failure" ? SKIP : undefined;
    if (outcome !== "success") return undefined;
    if (SEVERITY_SCORES[rule.definition.severity] < ATTEMPT_MIN_SCORE) return SKIP;
    if (this.refused === null) this.refused = refusal(event);
    return this.refused ?? SKIP;
  }

  /** Adds the alert, or what the storm fold lets out for it (its head at once, closed summaries). */
  private emit(alert: Alert, event: AuditEvent, alerts: Alert[]): void {
    if (!this.storms) {
      alerts.push(alert);
      return;
    }
    const { emit, closed } = this.storms.offer(alert, Date.parse(eventTime(event)));
    if (emit) alerts.push(emit);
    alerts.push(...closed);
  }

  /** Storm summaries whose windows the stream's event time has passed; call after each batch. */
  expire(): Alert[] {
    return this.storms?.expire() ?? [];
  }

  /** Every open storm summary, at the end of a finite input (replay, tests). */
  flush(): Alert[] {
    return [...(this.storms?.flush() ?? []), ...(this.windows?.flush() ?? [])];
  }

  /** Bounded memory of recent (rule, request) pairs (request: cluster + auditID + received time, see requestKey); older ones are still deduplicated downstream by the alert id. */
  private firstTime(key: string): boolean {
    if (this.recent.has(key)) return false;
    this.recent.add(key);
    if (this.recent.size > (this.options.recentRequests ?? 100_000)) {
      const oldest = this.recent.values().next().value;
      if (oldest !== undefined) this.recent.delete(oldest);
    }
    return true;
  }
}
