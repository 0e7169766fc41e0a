import type { Alert, AuditEvent } from "@k8s-audit/core";
import { buildAlert } from "./alert-builder.js";
import type { CompiledRule } from "./loader.js";

function succeeded(event: AuditEvent): boolean {
  const code = event.responseStatus?.code;
  if (event.annotations?.["authorization.k8s.io/decision"] === "forbid") return false;
  return code === undefined || code < 400;
}

/**
 * Evaluates events against the compiled rules. One request reaches us up to three times (one event per stage); a rule
 * fires at most once per request: by stage filtering, and by remembering recent (rule, request) pairs.
 */
export class Detector {
  private readonly byStage = new Map<string, CompiledRule[]>();
  /** Insertion-ordered, so the oldest entry is evicted first in O(1). */
  private readonly recent = new Set<string>();

  constructor(
    readonly rules: readonly CompiledRule[],
    private readonly options: { recentRequests?: number } = {},
  ) {
    for (const rule of rules) {
      for (const stage of rule.definition.stages) {
        const list = this.byStage.get(stage) ?? [];
        list.push(rule);
        this.byStage.set(stage, list);
      }
    }
  }

  evaluate(event: AuditEvent, now?: Date): Alert[] {
    const candidates = this.byStage.get(event.stage);
    if (!candidates) return [];
    const ok = succeeded(event);
    const alerts: Alert[] = [];
    for (const rule of candidates) {
      const outcome = rule.definition.outcome;
      if ((outcome === "success" && !ok) || (outcome === "failure" && ok)) continue;
      if (!rule.matches(event)) continue;
      if (!this.firstTime(`${rule.definition.id}\u0000${event.cluster ?? ""}\u0000${event.auditID}`)) continue;
      alerts.push(buildAlert(rule, event, now));
    }
    return alerts;
  }

  /** Bounded memory of recent (rule, request) pairs; older ones are still deduplicated downstream by the alert id. */
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
