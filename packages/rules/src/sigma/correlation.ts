import { issueLines } from "@k8s-audit/core";
import { type Duration, milliseconds } from "date-fns";
import { z } from "zod";
import type { CompileContext, Condition } from "../condition.js";
import { type CompiledRule, compileTimedRule } from "../loader.js";
import type { CompiledWindowRule } from "../timed-rule.js";
import { type TimedRuleDefinition, TimedRuleSchema } from "../timed-rule.js";

/**
 * Sigma correlation rules (Sigma specification v2: `correlation:` with event_count, value_count, temporal,
 * temporal_ordered) run on the same event-time window engine as the native windowed rules: counts become tumbling
 * windows of `timespan`, temporal rules become sequences within `timespan`.
 */
export const SigmaCorrelationSchema = z.looseObject({
  title: z.string().min(1),
  id: z.string().optional(),
  name: z.string().optional(),
  description: z.string().optional(),
  references: z.array(z.string()).optional(),
  tags: z.array(z.string()).optional(),
  level: z.enum(["informational", "low", "medium", "high", "critical"]).default("medium"),
  generate: z.boolean().optional(),
  correlation: z.looseObject({
    type: z.enum(["event_count", "value_count", "temporal", "temporal_ordered"]),
    rules: z.array(z.string().min(1)).min(1),
    "group-by": z.array(z.string().min(1)).min(1),
    timespan: z.string().regex(/^\d+[smhd]$/, "expected a timespan like 30s, 5m, 1h or 1d"),
    condition: z
      .object({ field: z.string().optional(), gte: z.number().int().optional(), gt: z.number().int().optional() })
      .loose()
      .optional(),
    generate: z.boolean().optional(),
  }),
});
export type SigmaCorrelation = z.infer<typeof SigmaCorrelationSchema>;

const TIMESPAN_UNITS: Record<string, keyof Duration> = { s: "seconds", m: "minutes", h: "hours", d: "days" };

/** A Sigma timespan (`30s`, `5m`, `1h`, `1d`; days of 24 hours) in seconds. */
export function timespanSeconds(timespan: string): number {
  const unit = TIMESPAN_UNITS[timespan.slice(-1)] ?? "seconds";
  return milliseconds({ [unit]: Number(timespan.slice(0, -1)) }) / 1000;
}

/** Whether the referenced rules still raise their own alerts (Sigma's `generate`, off by default). */
export function generatesBaseAlerts(doc: SigmaCorrelation): boolean {
  return doc.correlation.generate ?? doc.generate ?? false;
}

/**
 * Compiles one correlation against the base rules it names (by `name` or `id`); throws with the reason.
 * `metadata` supplies id, name, severity and threat from the document's title, level and tags.
 */
export function compileSigmaCorrelation(
  doc: SigmaCorrelation,
  source: string,
  bases: ReadonlyMap<string, CompiledRule>,
  metadata: Record<string, unknown>,
  tests: unknown,
  fieldPath: (field: string) => string,
): CompiledWindowRule {
  const c = doc.correlation;
  const referenced = c.rules.map((name) => {
    const base = bases.get(name);
    if (!base) throw new Error(`correlation names rule "${name}", which no loaded Sigma rule has as name or id`);
    return { name, condition: base.definition.condition };
  });
  const span = timespanSeconds(c.timespan);
  const group_by = c["group-by"].map(fieldPath);
  const common = {
    ...metadata,
    group_by,
    // Unmodified Sigma semantics, as for the base rules: system components are not excluded.
    exclude_system_components: false,
    tests: tests ?? { fire: [[{}]], quiet: [[{}]] },
  };
  let raw: Record<string, unknown>;
  if (c.type === "event_count" || c.type === "value_count") {
    const min = c.condition?.gte ?? (c.condition?.gt !== undefined ? c.condition.gt + 1 : undefined);
    if (min === undefined) throw new Error(`${c.type}: only "gte" and "gt" conditions can raise alerts in a stream`);
    if (c.type === "value_count" && !c.condition?.field) throw new Error("value_count needs condition.field");
    const condition: Condition =
      referenced.length === 1 ? (referenced[0]?.condition as Condition) : { any: referenced.map((r) => r.condition) };
    raw = {
      kind: "window",
      ...common,
      window: span,
      condition,
      ...(c.type === "value_count" ? { distinct: fieldPath(c.condition?.field as string) } : {}),
      threshold: { min: Math.max(1, min) },
    };
  } else {
    if (referenced.length < 2) throw new Error(`${c.type} needs at least two rules`);
    raw = {
      kind: "sequence",
      ...common,
      within: span,
      ordered: c.type === "temporal_ordered",
      steps: referenced.map((r) => ({ name: r.name, condition: r.condition })),
    };
  }
  const parsed = TimedRuleSchema.safeParse(raw);
  if (!parsed.success) throw new Error(issueLines(parsed.error).join("; "));
  const definition: TimedRuleDefinition = {
    ...parsed.data,
    version: "sigma",
    // Without a tests file the placeholder case is dropped: the rule carries none.
    tests: tests === undefined ? { fire: [], quiet: [] } : parsed.data.tests,
  };
  const ctx: CompileContext = { lists: new Map(), macros: new Map() };
  return compileTimedRule(definition, source, ctx);
}
