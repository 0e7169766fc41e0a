import { createHash } from "node:crypto";
import { z } from "zod";

/** ECS event.severity for each rule severity, as Kibana Security maps them (docs/decisions/0001-event-and-alert-contracts.md). */
export const SEVERITY_SCORES = { low: 21, medium: 47, high: 73, critical: 99 } as const;
export type Severity = keyof typeof SEVERITY_SCORES;
export const SeveritySchema = z.enum(["low", "medium", "high", "critical"]);

const MitreRefSchema = z.object({ id: z.array(z.string()), name: z.array(z.string()), reference: z.array(z.string()) });

/**
 * An alert is an ECS document from birth: the detector emits it, the bus carries it, the shipper indexes it as-is
 * (adding only event.ingested). One schema, no translation layer to drift.
 */
export const AlertSchema = z.object({
  "@timestamp": z.string(),
  message: z.string(),
  event: z.object({
    kind: z.literal("alert"),
    id: z.string(),
    category: z.array(z.string()),
    type: z.array(z.string()),
    action: z.string().optional(),
    outcome: z.enum(["success", "failure", "unknown"]).optional(),
    /** Attempt alerts: why the cluster refused the request. */
    reason: z.string().optional(),
    severity: z.union([z.literal(21), z.literal(47), z.literal(73), z.literal(99)]),
    risk_score: z.number().min(0).max(100),
    dataset: z.literal("k8s_audit.alert"),
    module: z.literal("k8s_audit"),
    provider: z.literal("kubernetes"),
    ingested: z.string().optional(),
    created: z.string(),
    start: z.string().optional(),
    end: z.string().optional(),
    count: z.number().int().positive().optional(),
  }),
  rule: z.object({
    id: z.string(),
    name: z.string(),
    description: z.string(),
    reference: z.array(z.string()),
    ruleset: z.string(),
    version: z.string(),
    category: z.string().optional(),
  }),
  threat: z
    .object({
      framework: z.literal("MITRE ATT&CK"),
      tactic: MitreRefSchema,
      technique: MitreRefSchema,
    })
    .optional(),
  user: z.object({ name: z.string().optional(), id: z.string().optional(), roles: z.array(z.string()).optional() }).optional(),
  source: z.object({ ip: z.string() }).optional(),
  user_agent: z.object({ original: z.string() }).optional(),
  orchestrator: z.object({
    type: z.literal("kubernetes"),
    cluster: z.object({ name: z.string() }),
    namespace: z.string().optional(),
    resource: z.object({ type: z.string().optional(), name: z.string().optional() }).optional(),
    api_version: z.string().optional(),
  }),
  related: z.object({ user: z.array(z.string()), ip: z.array(z.string()) }),
  kubernetes: z.object({
    audit: z.object({
      auditID: z.array(z.string()).min(1),
      verb: z.string(),
      requestURI: z.string(),
      stage: z.string(),
      /** The audit policy level the event was logged at: Metadata means the rule could not see any body. */
      level: z.string().optional(),
      requestReceivedTimestamp: z.string().optional(),
      responseStatus: z.object({ code: z.number().optional() }).optional(),
      impersonatedUser: z.object({ username: z.string().optional() }).optional(),
      /** The authenticated identity, when it acted as another (impersonation); user.name is the effective one. */
      user: z.object({ username: z.string().optional() }).optional(),
      /** The bodies were cut to fit (audit.k8s.io/truncated): the rule judged what was kept. */
      truncated: z.boolean().optional(),
    }),
  }),
  labels: z.record(z.string(), z.string()).optional(),
});

export type Alert = z.infer<typeof AlertSchema>;

/** Same input → same id: re-processing or replaying an event never creates a second alert document. */
export function alertId(...parts: string[]): string {
  return createHash("sha256").update(parts.join("\u0000")).digest("hex").slice(0, 32);
}
