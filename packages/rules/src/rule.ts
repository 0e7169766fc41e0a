import { AUDIT_STAGES, SeveritySchema } from "@k8s-audit/core";
import { z } from "zod";
import { type Condition, ConditionSchema } from "./condition.js";
import { TACTICS } from "./mitre.js";

/** What every rule says about itself, per-event and windowed alike. */
export const RULE_METADATA = {
  id: z.string().regex(/^[a-z0-9][a-z0-9_.-]*$/, "expected a lowercase id ([a-z0-9_.-])"),
  name: z.string().min(1),
  description: z.string().min(1),
  severity: SeveritySchema,
  risk_score: z.number().int().min(0).max(100).optional(),
  version: z.string().default("1"),
  threat: z
    .object({
      tactics: z.array(z.string().refine((t) => t in TACTICS, { message: "unknown MITRE ATT&CK tactic id" })).min(1),
      techniques: z.array(z.object({ id: z.string().regex(/^T\d{4}(\.\d{3})?$/), name: z.string() }).strict()).default([]),
    })
    .strict(),
  references: z.array(z.url()).default([]),
};

/** One detection, as written in a YAML file under rules/. Tests travel with the rule. */
export const RuleSchema = z
  .object({
    ...RULE_METADATA,
    /** ECS categorisation of the alert. */
    category: z.array(z.string()).default(["configuration"]),
    type: z.array(z.string()).default(["change"]),
    /** Stages the rule looks at; final stages by default (one request yields up to three events). */
    stages: z.array(z.enum(AUDIT_STAGES)).default(["ResponseComplete", "Panic"]),
    /** Whether the request must have succeeded (2xx/1xx), failed, or either. Missing responseStatus counts as success. */
    outcome: z.enum(["success", "failure", "any"]).default("success"),
    /**
     * Skip requests made by the cluster's own machinery (macro `system_component`: the apiserver, controllers,
     * schedulers, kubelets, kube-probe health checks). Off for rules where a controller acting is the signal
     * (a privileged pod is created by the ReplicaSet controller, not by the person who wrote the Deployment).
     */
    exclude_system_components: z.boolean().default(true),
    exceptions: z.lazy(() => ExceptionSchema).optional(),
    condition: ConditionSchema,
    tests: z
      .object({
        fire: z.array(z.record(z.string(), z.unknown())).min(1, "a rule needs at least one event that fires"),
        quiet: z.array(z.record(z.string(), z.unknown())).min(1, "a rule needs at least one event that stays quiet"),
      })
      .strict(),
  })
  .strict();

export type RuleDefinition = z.infer<typeof RuleSchema>;

/** Who or what a rule should not alert on. Values are exact, except images (glob) and user agents (prefix). */
export const ExceptionSchema = z
  .object({
    users: z.array(z.string()).default([]),
    groups: z.array(z.string()).default([]),
    namespaces: z.array(z.string()).default([]),
    images: z.array(z.string()).default([]),
    user_agents: z.array(z.string()).default([]),
  })
  .strict();
export type Exceptions = z.infer<typeof ExceptionSchema>;

/** A site's exceptions, in its own file: `exceptions: [{ rule: <id or "*">, users: [...], ... }]`. */
export const SiteExceptionsSchema = z.array(ExceptionSchema.extend({ rule: z.string().min(1) }).strict());

/** A file of shared building blocks: named value lists and named conditions (macros). */
export const LibrarySchema = z
  .object({
    exceptions: z.lazy(() => SiteExceptionsSchema).default([]),
    lists: z.record(z.string(), z.array(z.union([z.string(), z.number(), z.boolean()]))).default({}),
    macros: z.record(z.string(), ConditionSchema).default({}),
  })
  .strict();

export type Library = { lists: Record<string, (string | number | boolean)[]>; macros: Record<string, Condition> };
