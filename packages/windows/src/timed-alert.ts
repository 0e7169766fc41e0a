import { type Alert, alertId, redactRequestURI } from "@k8s-audit/core";
import { alertEnvelope } from "@k8s-audit/rules";
import type { EventFacts } from "./bucket.js";
import type { RuleState } from "./state.js";

/** The alert for a closed window, a completed sequence or a silence: its id depends on rule, cluster, key and window start. */
export function timedAlert(
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
