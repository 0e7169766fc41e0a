import {
  type Alert,
  type AuditEvent,
  alertId,
  ecsEntities,
  eventTime,
  redactRequestURI,
  redactText,
  requestOutcome,
  SEVERITY_SCORES,
} from "@k8s-audit/core";
import type { CompiledRule } from "./loader.js";
import { TACTICS, tacticReference, techniqueReference } from "./mitre.js";
import { authenticatedUser, effectiveUser } from "./request.js";
import type { RuleDefinition } from "./rule.js";

export const RULESET = "k8s-audit-pipeline";

function describeTarget(event: AuditEvent, requestURI: string): string {
  const ref = event.objectRef;
  if (!ref?.resource) return requestURI;
  const kind = ref.subresource ? `${ref.resource}/${ref.subresource}` : ref.resource;
  const name = ref.name ? `${kind} ${ref.name}` : kind;
  return ref.namespace ? `${name} in namespace ${ref.namespace}` : name;
}

/** ECS `threat.*` for a rule's MITRE ATT&CK tactics and techniques, with names and links. */
export function threatOf(threat: RuleDefinition["threat"]): NonNullable<Alert["threat"]> {
  return {
    framework: "MITRE ATT&CK",
    tactic: { id: threat.tactics, name: threat.tactics.map((t) => TACTICS[t] ?? t), reference: threat.tactics.map(tacticReference) },
    technique: {
      id: threat.techniques.map((t) => t.id),
      name: threat.techniques.map((t) => t.name),
      reference: threat.techniques.map((t) => techniqueReference(t.id)),
    },
  };
}

/** What the rule's metadata gives every alert it raises (per-event and timed rules share RULE_METADATA). */
export type AlertingRule = Pick<
  RuleDefinition,
  "id" | "name" | "description" | "severity" | "risk_score" | "version" | "threat" | "references"
> & {
  category: string[];
  type: string[];
};

/** The parts of an alert's envelope that differ between per-event, attempt and timed alerts. */
export interface EnvelopeFields {
  id: string;
  timestamp: string;
  message: string;
  action: string;
  outcome: Alert["event"]["outcome"];
  created: string;
  /** Defaults to the rule's own (an attempt alert has its own id, name and lowered severity). */
  ruleId?: string;
  name?: string;
  severity?: RuleDefinition["severity"];
  riskScore?: number;
  reason?: string;
  /** Timed alerts: the window and how many events it counted. */
  start?: string;
  end?: string;
  count?: number;
}

/**
 * The one alert envelope (ECS `event`, `rule`, `threat`, message and time) for every alert the detector raises:
 * per-event, attempt and timed alerts call it; storm summaries copy the envelope of the alert they fold. The rest of
 * an alert (who, where, what request) is the caller's.
 */
export function alertEnvelope(def: AlertingRule, f: EnvelopeFields): Pick<Alert, "@timestamp" | "message" | "event" | "rule" | "threat"> {
  const severity = f.severity ?? def.severity;
  return {
    "@timestamp": f.timestamp,
    message: f.message,
    event: {
      kind: "alert",
      id: f.id,
      category: def.category,
      type: def.type,
      action: f.action,
      outcome: f.outcome,
      ...(f.reason === undefined ? {} : { reason: f.reason }),
      severity: SEVERITY_SCORES[severity],
      risk_score: f.riskScore ?? def.risk_score ?? SEVERITY_SCORES[severity],
      dataset: "k8s_audit.alert",
      module: "k8s_audit",
      provider: "kubernetes",
      created: f.created,
      ...(f.start === undefined ? {} : { start: f.start }),
      ...(f.end === undefined ? {} : { end: f.end }),
      ...(f.count === undefined ? {} : { count: f.count }),
    },
    rule: {
      id: f.ruleId ?? def.id,
      name: f.name ?? def.name,
      description: def.description,
      reference: def.references,
      ruleset: RULESET,
      version: def.version,
    },
    threat: threatOf(def.threat),
  };
}

const LOWER_SEVERITY = { critical: "high", high: "medium", medium: "low", low: "low" } as const;

/** Whether the apiserver (or our ingest) had to cut the event's bodies: the rule judged what was kept. */
function truncated(event: AuditEvent): boolean {
  return event.annotations?.["audit.k8s.io/truncated"] === "true";
}

/**
 * The ECS alert for one request matched by one rule (design.md §4); `attempt` is the refusal reason when the request
 * was refused (an attempt alert: the rule id with `.attempt`, one severity lower). `user.name` is the effective
 * identity (the impersonated user when there is one); the authenticated one is `kubernetes.audit.user.username`, and
 * both are in `related.user`. Its id depends only on rule, cluster and request (auditID + received time).
 */
export function buildAlert(rule: CompiledRule, event: AuditEvent, now: Date = new Date(), attempt?: string): Alert {
  const def = rule.definition;
  const { ruleId, name, severity, riskScore } = alertRuleFields(def, attempt);
  const cluster = event.cluster ?? "default";
  const effective = effectiveUser(event);
  const user = effective.username;
  const authenticated = authenticatedUser(event).username;
  const impersonated = event.impersonatedUser?.username;
  const actor = impersonated ? `${authenticated ?? "unknown"} (as ${impersonated})` : (user ?? "unknown");
  const id = alertId(ruleId, cluster, event.auditID, event.requestReceivedTimestamp ?? event.timestamp ?? "");
  const related = [...new Set([authenticated, user].filter((u): u is string => Boolean(u)))];
  const cut = truncated(event);
  const entities = ecsEntities(event);
  // Scrubbed here as well as at the ingest and in replay: an alert must never carry an exec command's password or a
  // URL's token, whatever path the event took to the detector (docs/redaction.md).
  const requestURI = redactRequestURI(event.requestURI).uri;
  const reason = attempt === undefined ? undefined : (redactText(attempt) ?? attempt);

  return {
    ...alertEnvelope(def, {
      id,
      ruleId,
      name,
      severity,
      riskScore,
      timestamp: eventTime(event),
      message: `${name}: ${actor} ${event.verb} ${describeTarget(event, requestURI)}${cut ? " (body truncated)" : ""}`,
      action: event.verb,
      outcome: requestOutcome(event),
      ...(reason === undefined ? {} : { reason }),
      created: now.toISOString(),
    }),
    ...(user || effective.uid ? { user: { name: user, id: effective.uid, roles: effective.groups ?? undefined } } : {}),
    ...entities,
    related: { ...entities.related, user: related },
    ...alertLabels(attempt !== undefined, cut),
    kubernetes: { audit: kubernetesAudit(event, requestURI, authenticated, cut) },
  };
}

/** The rule's own id, name and severity, or an attempt's: `<id>.attempt`, "Attempt refused: …", one severity lower. */
function alertRuleFields(
  def: RuleDefinition,
  attempt: string | undefined,
): { ruleId: string; name: string; severity: RuleDefinition["severity"]; riskScore: number } {
  if (attempt === undefined)
    return { ruleId: def.id, name: def.name, severity: def.severity, riskScore: def.risk_score ?? SEVERITY_SCORES[def.severity] };
  const severity = LOWER_SEVERITY[def.severity];
  return { ruleId: `${def.id}.attempt`, name: `Attempt refused: ${def.name}`, severity, riskScore: SEVERITY_SCORES[severity] };
}

function alertLabels(attempt: boolean, cut: boolean): Pick<Alert, "labels"> {
  if (!attempt && !cut) return {};
  return { labels: { ...(attempt ? { attempt: "true" } : {}), ...(cut ? { truncated: "true" } : {}) } };
}

function kubernetesAudit(
  event: AuditEvent,
  requestURI: string,
  authenticated: string | undefined,
  cut: boolean,
): Alert["kubernetes"]["audit"] {
  const code = event.responseStatus?.code;
  const impersonated = event.impersonatedUser?.username;
  return {
    auditID: [event.auditID],
    verb: event.verb,
    requestURI,
    stage: event.stage,
    level: event.level,
    ...(event.requestReceivedTimestamp ? { requestReceivedTimestamp: event.requestReceivedTimestamp } : {}),
    ...(code !== undefined ? { responseStatus: { code } } : {}),
    ...(impersonated ? { impersonatedUser: { username: impersonated }, user: { username: authenticated } } : {}),
    ...(cut ? { truncated: true } : {}),
  };
}
