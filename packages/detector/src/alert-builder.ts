import { type Alert, type AuditEvent, alertId, ecsEntities, eventTime, SEVERITY_SCORES } from "@k8s-audit/core";
import type { CompiledRule } from "./loader.js";
import { TACTICS, tacticReference, techniqueReference } from "./mitre.js";
import type { RuleDefinition } from "./rule.js";

export const RULESET = "k8s-audit-pipeline";

function describeTarget(event: AuditEvent): string {
  const ref = event.objectRef;
  if (!ref?.resource) return event.requestURI;
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

/** The ECS alert for one event matched by one rule (design.md §4). Its id depends only on rule, cluster and request. */
export function buildAlert(rule: CompiledRule, event: AuditEvent, now: Date = new Date()): Alert {
  const def = rule.definition;
  const cluster = event.cluster ?? "default";
  const user = event.user.username;
  const code = event.responseStatus?.code;
  const decision = event.annotations?.["authorization.k8s.io/decision"];
  const failed = (code !== undefined && code >= 400) || decision === "forbid";
  const impersonated = event.impersonatedUser?.username;
  const actor = impersonated ? `${user ?? "unknown"} (as ${impersonated})` : (user ?? "unknown");
  const id = alertId(def.id, cluster, event.auditID);

  return {
    "@timestamp": eventTime(event),
    message: `${def.name}: ${actor} ${event.verb} ${describeTarget(event)}`,
    event: {
      kind: "alert",
      id,
      category: def.category,
      type: def.type,
      action: event.verb,
      outcome: code === undefined && decision === undefined ? "unknown" : failed ? "failure" : "success",
      severity: SEVERITY_SCORES[def.severity],
      risk_score: def.risk_score ?? SEVERITY_SCORES[def.severity],
      dataset: "k8s_audit.alert",
      module: "k8s_audit",
      provider: "kubernetes",
      created: now.toISOString(),
    },
    rule: {
      id: def.id,
      name: def.name,
      description: def.description,
      reference: def.references,
      ruleset: RULESET,
      version: def.version,
    },
    threat: threatOf(def.threat),
    ...(user || event.user.uid ? { user: { name: user, id: event.user.uid, roles: event.user.groups ?? undefined } } : {}),
    ...ecsEntities(event),
    kubernetes: {
      audit: {
        auditID: [event.auditID],
        verb: event.verb,
        requestURI: event.requestURI,
        stage: event.stage,
        ...(code !== undefined ? { responseStatus: { code } } : {}),
        ...(impersonated ? { impersonatedUser: { username: impersonated } } : {}),
      },
    },
  };
}
