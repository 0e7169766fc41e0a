import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { issueLines, K8sAuditError, type Severity } from "@k8s-audit/core";
import { parse, parseAllDocuments } from "yaml";
import { z } from "zod";
import { type CompileContext, type Condition, compileCondition, fieldsRead, type Predicate } from "../condition.js";
import type { CompiledRule } from "../loader.js";
import { TACTICS } from "../mitre.js";
import { RuleSchema } from "../rule.js";
import { compileGlob } from "../text-match.js";
import type { CompiledWindowRule } from "../timed-rule.js";
import { parseSigmaCondition, type SigmaExpr } from "./condition-parser.js";
import { compileSigmaCorrelation, generatesBaseAlerts, type SigmaCorrelation, SigmaCorrelationSchema } from "./correlation.js";

/**
 * Sigma rules for Kubernetes audit logs (`logsource: product: kubernetes, service: audit`), loaded unmodified and
 * translated into the engine's own condition trees, so they run in-stream beside the native rules.
 */
const SigmaRuleSchema = z.looseObject({
  title: z.string().min(1),
  id: z.string().optional(),
  description: z.string().optional(),
  references: z.array(z.string()).optional(),
  tags: z.array(z.string()).optional(),
  level: z.enum(["informational", "low", "medium", "high", "critical"]).default("medium"),
  logsource: z.looseObject({ product: z.literal("kubernetes"), service: z.literal("audit") }),
  detection: z.record(z.string(), z.unknown()).refine((d) => typeof d.condition === "string" || Array.isArray(d.condition), {
    message: "detection.condition is missing",
  }),
});

/** The one audit event path a Sigma field stands for (group-by and value_count fields need a single path). */
const fieldPath = (field: string) => (SIGMA_FIELD_MAPPINGS[field]?.length === 1 ? (SIGMA_FIELD_MAPPINGS[field]?.[0] as string) : field);

/** Pseudo-fields used by Sigma's Kubernetes rules, and the audit event paths they stand for. */
const POD_SPEC_PREFIXES = [
  "requestObject.spec.",
  "requestObject.spec.template.spec.",
  "requestObject.spec.jobTemplate.spec.template.spec.",
];
const CONTAINER_KINDS = ["containers", "initContainers", "ephemeralContainers"];
export const SIGMA_FIELD_MAPPINGS: Record<string, string[]> = {
  apiGroup: ["objectRef.apiGroup"],
  hostPath: POD_SPEC_PREFIXES.map((p) => `${p}volumes.hostPath.path`),
  capabilities: POD_SPEC_PREFIXES.flatMap((p) => CONTAINER_KINDS.map((k) => `${p}${k}.securityContext.capabilities.add`)),
  privileged: POD_SPEC_PREFIXES.flatMap((p) => CONTAINER_KINDS.map((k) => `${p}${k}.securityContext.privileged`)),
  hostNetwork: POD_SPEC_PREFIXES.map((p) => `${p}hostNetwork`),
  hostPID: POD_SPEC_PREFIXES.map((p) => `${p}hostPID`),
  hostIPC: POD_SPEC_PREFIXES.map((p) => `${p}hostIPC`),
  image: POD_SPEC_PREFIXES.flatMap((p) => CONTAINER_KINDS.map((k) => `${p}${k}.image`)),
};

const LEVELS: Record<string, Severity> = { informational: "low", low: "low", medium: "medium", high: "high", critical: "critical" };
const TACTIC_BY_NAME = new Map(Object.entries(TACTICS).map(([id, name]) => [name.toLowerCase().replace(/[\s_-]+/g, "-"), id]));

/** The project's own Sigma rules, equivalent to SigmaHQ's Kubernetes audit set (written here, not copied). */
export const SHIPPED_SIGMA_DIR = fileURLToPath(new URL("../../sigma", import.meta.url));

export class SigmaLoadError extends K8sAuditError {
  constructor(readonly problems: string[]) {
    super(`Sigma rules failed to load:\n  ${problems.join("\n  ")}`, { code: "K8S_AUDIT_SIGMA_INVALID" });
  }
}

type Scalar = string | number | boolean | null;

/** One `field|modifiers: value(s)` pair as a condition. */
function fieldCondition(key: string, raw: unknown): Condition {
  const [name = "", ...modifiers] = key.split("|");
  const paths = SIGMA_FIELD_MAPPINGS[name] ?? [name];
  const values: Scalar[] = Array.isArray(raw) ? (raw as Scalar[]) : [raw as Scalar];
  const all = modifiers.includes("all");
  const ops = modifiers.filter((m) => m !== "all");
  const known = ["contains", "startswith", "endswith", "re", "cidr", "exists", "gt", "gte", "lt", "lte"];
  for (const m of ops) if (!known.includes(m)) throw new Error(`unsupported modifier |${m} on ${name}`);
  if (ops.length > 1) throw new Error(`only one value modifier per field is supported (${key})`);
  const op = ops[0];

  const one = (path: string, value: Scalar): Condition => {
    if (op === "exists") return { field: path, exists: value === true };
    if (value === null) return { field: path, exists: false };
    if (op === "gt" || op === "gte" || op === "lt" || op === "lte") return { field: path, [op]: Number(value) } as Condition;
    if (typeof value !== "string") return { field: path, equals: value };
    switch (op) {
      case "contains":
        return { field: path, contains: value, ignore_case: true };
      case "startswith":
        return { field: path, prefix: value, ignore_case: true };
      case "endswith":
        return { field: path, suffix: value, ignore_case: true };
      case "re":
        return { field: path, regex: value };
      case "cidr":
        return { field: path, cidr: value };
      default:
        // Sigma: plain strings match case-insensitively; * and ? are wildcards.
        if (value === "*") return { field: path, exists: true };
        return /[*?]/.test(value) ? { field: path, glob: value, ignore_case: true } : { field: path, equals: value, ignore_case: true };
    }
  };
  const perValue = values.map((v) => (paths.length === 1 ? one(paths[0] as string, v) : { any: paths.map((p) => one(p, v)) }));
  if (perValue.length === 1) return perValue[0] as Condition;
  return all ? { all: perValue } : { any: perValue };
}

/** A search identifier: a map (all of its fields) or a list of maps (any of them). */
function searchCondition(name: string, body: unknown): Condition {
  if (Array.isArray(body)) {
    if (body.some((b) => typeof b !== "object" || b === null))
      throw new Error(`${name}: keyword lists are not supported for audit events; use field: value`);
    return { any: body.map((b, i) => searchCondition(`${name}[${i}]`, b)) };
  }
  if (typeof body !== "object" || body === null) throw new Error(`${name}: expected a map of field: value`);
  const parts = Object.entries(body).map(([k, v]) => fieldCondition(k, v));
  if (parts.length === 0) throw new Error(`${name}: empty`);
  return parts.length === 1 ? (parts[0] as Condition) : { all: parts };
}

function exprToCondition(expr: SigmaExpr, searches: Map<string, Condition>): Condition {
  switch (expr.kind) {
    case "ref": {
      const c = searches.get(expr.name);
      if (!c) throw new Error(`condition names "${expr.name}", which detection does not define`);
      return c;
    }
    case "and":
      return { all: expr.parts.map((p) => exprToCondition(p, searches)) };
    case "or":
      return { any: expr.parts.map((p) => exprToCondition(p, searches)) };
    case "not":
      return { not: exprToCondition(expr.inner, searches) };
    case "quantified": {
      const named = expr.pattern === "them" ? () => true : compileGlob(expr.pattern);
      const matched = [...searches].filter(([n]) => named(n)).map(([, c]) => c);
      if (matched.length === 0)
        throw new Error(`"${expr.quantifier === "all" ? "all" : "1"} of ${expr.pattern}" matches no search identifier`);
      return expr.quantifier === "all" ? { all: matched } : { any: matched };
    }
  }
}

const SigmaTestsSchema = z
  .object({ fire: z.array(z.record(z.string(), z.unknown())).min(1), quiet: z.array(z.record(z.string(), z.unknown())).min(1) })
  .strict();
type SigmaTests = z.infer<typeof SigmaTestsSchema>;

/** What the engine's rules say about themselves, from a Sigma document's title, id, level, tags and references. */
export function sigmaMetadata(
  rule: { title: string; id?: string; description?: string; level: keyof typeof LEVELS; tags?: string[]; references?: string[] },
  source: string,
) {
  const tags = rule.tags ?? [];
  const techniques = tags.filter((t) => /^attack\.t\d{4}(\.\d{3})?$/i.test(t)).map((t) => t.slice(7).toUpperCase());
  const tactics = tags
    .map((t) =>
      TACTIC_BY_NAME.get(
        t
          .replace(/^attack\./i, "")
          .toLowerCase()
          .replace(/_/g, "-"),
      ),
    )
    .filter((t): t is string => Boolean(t));
  return {
    id: `sigma.${(rule.id ?? source).toLowerCase().replace(/[^a-z0-9_.-]/g, "-")}`,
    name: rule.title,
    description: rule.description?.trim() || rule.title,
    severity: LEVELS[rule.level] as Severity,
    threat: { tactics: tactics.length ? [...new Set(tactics)] : ["TA0007"], techniques: techniques.map((t) => ({ id: t, name: t })) },
    references: (rule.references ?? []).filter((r) => /^https?:\/\//.test(r)),
  };
}

/**
 * Translates one parsed Sigma document into a compiled rule; throws with the reason. Test events, when the rule has
 * them (a `<name>.tests.yaml` beside it), travel with it like a native rule's.
 */
export function compileSigmaRule(doc: unknown, source: string, tests?: SigmaTests): CompiledRule {
  const parsed = SigmaRuleSchema.safeParse(doc);
  if (!parsed.success) throw new Error(issueLines(parsed.error).join("; "));
  const rule = parsed.data;
  const { condition: conditionText, timeframe: _timeframe, ...searchBodies } = rule.detection;
  const searches = new Map<string, Condition>();
  for (const [name, body] of Object.entries(searchBodies)) searches.set(name, searchCondition(name, body));
  const conditions = (Array.isArray(conditionText) ? conditionText : [conditionText]).map((c) =>
    exprToCondition(parseSigmaCondition(String(c)), searches),
  );
  const condition: Condition = conditions.length === 1 ? (conditions[0] as Condition) : { any: conditions };

  const definition = RuleSchema.parse({
    ...sigmaMetadata(rule, source),
    // Sigma rules state response codes themselves when they care; system components are not excluded (unmodified semantics).
    outcome: "any",
    exclude_system_components: false,
    condition,
    tests: tests ?? { fire: [{}], quiet: [{}] },
  });
  const ctx: CompileContext = { lists: new Map(), macros: new Map() };
  let matches: Predicate;
  try {
    matches = compileCondition(condition, ctx);
  } catch (err) {
    // The file is added by loadSigmaPack; the rule is named here (a file may hold several).
    throw new Error(`rule ${definition.id} (${rule.title}): ${(err as Error).message}`);
  }
  return {
    // Rules without a tests file carry none (runRuleTests skips them).
    definition: { ...definition, version: "sigma", tests: tests ?? { fire: [], quiet: [] } },
    source,
    matches,
    exceptions: { users: [], groups: [], namespaces: [], images: [], user_agents: [] },
    fields: fieldsRead(condition, ctx),
    // Unmodified Sigma semantics: nothing is excused as routine.
    isSystemRoutine: () => false,
  };
}

function sigmaFiles(dir: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir).sort()) {
    const path = join(dir, entry);
    if (statSync(path).isDirectory()) out.push(...sigmaFiles(path));
    else if (/\.ya?ml$/.test(entry) && !/\.tests\.ya?ml$/.test(entry)) out.push(path);
  }
  return out;
}

/**
 * Loads every Sigma rule under the folders; all problems are reported together, each with its file and reason. A file
 * may hold several documents (base rules and the correlations that name them). Correlations become timed rules; the
 * rules they name stop alerting on their own unless the correlation says `generate: true`.
 */
export function loadSigmaPack(dirs: string[]): { rules: CompiledRule[]; windowRules: CompiledWindowRule[] } {
  const problems: string[] = [];
  const found: SigmaSources = { rules: [], bases: new Map(), correlations: [] };
  for (const dir of dirs) {
    for (const file of sigmaFiles(dir)) {
      try {
        readSigmaFile(file, relative(dir, file), found);
      } catch (err) {
        problems.push(`${file}: ${(err as Error).message}`);
      }
    }
  }
  const { rules, bases } = found;
  const silenced = new Set<CompiledRule>();
  const windowRules: CompiledWindowRule[] = [];
  for (const { doc, source, file, tests } of found.correlations) {
    try {
      windowRules.push(compileSigmaCorrelation(doc, source, bases, sigmaMetadata(doc, source), tests, fieldPath));
      if (!generatesBaseAlerts(doc)) for (const name of doc.correlation.rules) silenced.add(bases.get(name) as CompiledRule);
    } catch (err) {
      problems.push(`${file}: ${(err as Error).message}`);
    }
  }
  if (problems.length > 0) throw new SigmaLoadError(problems);
  return { rules: rules.filter((r) => !silenced.has(r)), windowRules };
}

/** What the Sigma files hold: per-event rules, by name and id too (correlations name them), and the correlations. */
interface SigmaSources {
  rules: CompiledRule[];
  bases: Map<string, CompiledRule>;
  correlations: { doc: SigmaCorrelation; source: string; file: string; tests: unknown }[];
}

/** One file's documents (and its tests file) into `found`; throws at the file's first problem. */
function readSigmaFile(file: string, source: string, found: SigmaSources): void {
  const testsFile = file.replace(/\.ya?ml$/, ".tests.yaml");
  const rawTests: unknown = existsSync(testsFile) ? parse(readFileSync(testsFile, "utf8")) : undefined;
  const docs = parseAllDocuments(readFileSync(file, "utf8"));
  const parsedDocs = (Array.isArray(docs) ? docs : [docs]).map((d) => {
    if (d.errors.length > 0) throw new Error(`YAML: ${d.errors[0]?.message}`);
    return d.toJS() as unknown;
  });
  const hasCorrelation = parsedDocs.some((d) => typeof d === "object" && d !== null && "correlation" in d);
  for (const doc of parsedDocs) {
    if (doc === null || doc === undefined) continue;
    if (typeof doc === "object" && "correlation" in doc) {
      const correlation = SigmaCorrelationSchema.safeParse(doc);
      if (!correlation.success) throw new Error(issueLines(correlation.error).join("; "));
      found.correlations.push({ doc: correlation.data, source, file, tests: rawTests });
      continue;
    }
    // In a file with a correlation, the tests file is the correlation's.
    const tests = rawTests !== undefined && !hasCorrelation ? SigmaTestsSchema.parse(rawTests) : undefined;
    addBaseRule(doc, compileSigmaRule(doc, source, tests), found);
  }
}

/** A per-event rule, findable by its name and its id (how correlations refer to it). */
function addBaseRule(doc: unknown, rule: CompiledRule, found: SigmaSources): void {
  found.rules.push(rule);
  const { name, id } = doc as { name?: unknown; id?: unknown };
  if (typeof name === "string") found.bases.set(name, rule);
  if (typeof id === "string") found.bases.set(id, rule);
}

/** The per-event Sigma rules (correlations need the window engine: see loadSigmaPack). */
export function loadSigmaRules(dirs: string[]): CompiledRule[] {
  return loadSigmaPack(dirs).rules;
}
