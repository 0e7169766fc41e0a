import { readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { type AuditEvent, issueLines, K8sAuditError } from "@k8s-audit/core";
import { parseAllDocuments } from "yaml";
import type { z } from "zod";
import { type CompileContext, type Condition, compileCondition, fieldsRead, type Predicate, requiredValues } from "./condition.js";
import { containersOf } from "./request.js";
import { type Exceptions, LibrarySchema, type RuleDefinition, RuleSchema } from "./rule.js";
import { admissionCondition, type CompiledWindowRule, type TimedRuleDefinition, TimedRuleSchema } from "./timed-rule.js";

/** The rule pack shipped with the product. */
export const SHIPPED_RULES_DIR = fileURLToPath(new URL("../shipped", import.meta.url));

/**
 * What `exclude_system_components` excludes: the cluster's own identities doing what their role does (macro in
 * rules/_library.yaml). A control-plane identity doing anything else is judged like anyone.
 */
export const SYSTEM_ROUTINE_MACRO = "system_routine";

export interface CompiledRule {
  readonly definition: RuleDefinition;
  /** File the rule came from, relative to its rules folder. */
  readonly source: string;
  /** The condition, minus system routine (unless the rule opts out) and minus the rule's and the site's exceptions. */
  readonly matches: Predicate;
  readonly exceptions: Exceptions;
  /** The objectRef.resource values the rule can match at all; undefined when any resource can. */
  readonly resources?: ReadonlySet<string>;
  /** The verbs the rule can match at all; undefined when any verb can. */
  readonly verbs?: ReadonlySet<string>;
  /** The field paths its condition tests (macros included). */
  readonly fields: ReadonlySet<string>;
  /** Whether the event is the cluster's own routine (what exclude_system_components leaves out), for any rule. */
  readonly isSystemRoutine: Predicate;
}

/**
 * The exception for images: every container the request carries (all kinds, every pod spec: see request.ts) runs an
 * allowed image. One allowed sidecar must not excuse a privileged container beside it.
 */
function everyImageAllowed(globs: readonly string[]): Predicate {
  const allowed = compileCondition({ field: "image", glob: [...globs] }, { lists: new Map(), macros: new Map() });
  return (event) => {
    const containers = containersOf(event as AuditEvent);
    if (!containers?.length) return false;
    for (const c of containers) if (!allowed(c)) return false;
    return true;
  };
}

/** A rule's and its site's exceptions as one predicate (any of them excuses the event). */
function exceptionPredicate(e: Exceptions, ctx: CompileContext): Predicate | undefined {
  const parts: Condition[] = [];
  if (e.users.length) parts.push({ field: "user.username", in: e.users });
  if (e.groups.length) parts.push({ field: "user.groups", in: e.groups });
  if (e.namespaces.length) parts.push({ field: "objectRef.namespace", in: e.namespaces });
  if (e.user_agents.length) parts.push({ field: "userAgent", prefix: e.user_agents });
  const predicates = parts.length ? [compileCondition({ any: parts }, ctx)] : [];
  if (e.images.length) predicates.push(everyImageAllowed(e.images));
  if (predicates.length === 0) return undefined;
  return (event) => {
    for (const p of predicates) if (p(event)) return true;
    return false;
  };
}

function mergeExceptions(all: (Exceptions | undefined)[]): Exceptions {
  const out: Exceptions = { users: [], groups: [], namespaces: [], images: [], user_agents: [] };
  for (const e of all) if (e) for (const k of Object.keys(out) as (keyof Exceptions)[]) out[k].push(...e[k]);
  return out;
}

export class RuleLoadError extends K8sAuditError {
  constructor(readonly problems: string[]) {
    super(`rules failed to load:\n  ${problems.join("\n  ")}`, { code: "K8S_AUDIT_RULES_INVALID" });
  }
}

function yamlFiles(dir: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir).sort()) {
    const path = join(dir, entry);
    if (statSync(path).isDirectory()) out.push(...yamlFiles(path));
    else if (/\.ya?ml$/.test(entry)) out.push(path);
  }
  return out;
}

/** Compiles a timed rule's conditions (admission, ratio, steps) against the pack's lists and macros. */
export function compileTimedRule(
  definition: TimedRuleDefinition,
  source: string,
  ctx: CompileContext,
  isSystemRoutine?: Predicate,
): CompiledWindowRule {
  const admits = admissionCondition(definition);
  return {
    definition,
    source,
    ...(admits === undefined ? {} : { matches: compileCondition(admits, ctx) }),
    ...(definition.exclude_system_components && isSystemRoutine ? { isSystemRoutine } : {}),
    ...(definition.kind === "window" && definition.ratio ? { ratio: compileCondition(definition.ratio.condition, ctx) } : {}),
    ...(definition.kind === "sequence" ? { steps: definition.steps.map((s) => compileCondition(s.condition, ctx)) } : {}),
  };
}

/**
 * Loads every YAML file under the given folders (shipped pack first, site folders after). A document with `lists` or
 * `macros` is a library; any other document is one rule. All problems are collected and reported together, each naming
 * the file, the rule and the key.
 */
export function loadRules(dirs: string[] = [SHIPPED_RULES_DIR]): CompiledRule[] {
  return loadRulePack(dirs).rules;
}

/** The whole pack: per-event rules and windowed rules (documents with `kind: window`), sharing lists and macros. */
export function loadRulePack(dirs: string[] = [SHIPPED_RULES_DIR]): { rules: CompiledRule[]; windowRules: CompiledWindowRule[] } {
  const pack = readPack(dirs);
  const { problems } = pack;
  const ctx: CompileContext = { lists: pack.lists, macros: pack.macros };
  // One predicate for the pack (compiled on first use, inside a rule's try: a broken site macro is that rule's problem).
  let systemRoutine: Predicate | undefined;
  const systemRoutineOf = () => {
    systemRoutine ??= compileCondition({ macro: SYSTEM_ROUTINE_MACRO }, ctx);
    return systemRoutine;
  };
  checkMacros(pack.macroFiles, ctx, problems);
  /** Rule id → the file that defined it first. */
  const seen = new Map<string, string>();
  const rules: CompiledRule[] = [];
  for (const { definition, source, file } of pack.definitions) {
    if (!claimId(definition.id, source, seen, problems)) continue;
    try {
      rules.push(compileRule(definition, source, pack.siteExceptions, ctx, systemRoutineOf));
    } catch (err) {
      problems.push(`${file}: rule ${definition.id}: condition: ${(err as Error).message}`);
    }
  }
  const windowRules: CompiledWindowRule[] = [];
  for (const { definition, source, file } of pack.windowDefinitions) {
    if (!claimId(definition.id, source, seen, problems)) continue;
    try {
      windowRules.push(compileTimedRule(definition, source, ctx, definition.exclude_system_components ? systemRoutineOf() : undefined));
    } catch (err) {
      problems.push(`${file}: rule ${definition.id}: condition: ${(err as Error).message}`);
    }
  }
  const known = new Set(rules.map((r) => r.definition.id));
  for (const e of pack.siteExceptions) if (e.rule !== "*" && !known.has(e.rule)) problems.push(`exceptions: no rule with id ${e.rule}`);
  if (problems.length > 0) throw new RuleLoadError(problems);
  return { rules, windowRules };
}

/** A definition and where it came from: `source` relative to its rules folder, `file` the full path. */
interface Located<T> {
  definition: T;
  source: string;
  file: string;
}

/** What the pack's files hold, before anything is compiled, and the problems found reading them. */
interface PackSources {
  problems: string[];
  definitions: Located<RuleDefinition>[];
  windowDefinitions: Located<TimedRuleDefinition>[];
  /** The file each macro was last defined in (site files may redefine shipped macros). */
  macroFiles: Map<string, string>;
  lists: Map<string, (string | number | boolean)[]>;
  macros: Map<string, z.infer<typeof LibrarySchema>["macros"][string]>;
  siteExceptions: (Exceptions & { rule: string })[];
}

function readPack(dirs: string[]): PackSources {
  const pack: PackSources = {
    problems: [],
    definitions: [],
    windowDefinitions: [],
    macroFiles: new Map(),
    lists: new Map(),
    macros: new Map(),
    siteExceptions: [],
  };
  for (const dir of dirs) for (const file of yamlFiles(dir)) readRuleFile(file, relative(dir, file), pack);
  return pack;
}

function readRuleFile(file: string, source: string, pack: PackSources): void {
  const docs = parseAllDocuments(readFileSync(file, "utf8"));
  for (const doc of Array.isArray(docs) ? docs : [docs]) {
    if (doc.errors.length > 0) pack.problems.push(`${file}: YAML: ${doc.errors[0]?.message}`);
    else readDocument(doc.toJS(), file, source, pack);
  }
}

/** A library (lists, macros, exceptions; no id), a windowed rule (it has a `kind`) or a per-event rule. */
function readDocument(raw: unknown, file: string, source: string, pack: PackSources): void {
  if (raw === null || raw === undefined) return;
  if (typeof raw === "object" && !("id" in raw) && ("lists" in raw || "macros" in raw || "exceptions" in raw)) readLibrary(raw, file, pack);
  else if (typeof raw === "object" && "kind" in raw) readWindowRule(raw, file, source, pack);
  else readRule(raw, file, source, pack);
}

function readLibrary(raw: object, file: string, pack: PackSources): void {
  const lib = LibrarySchema.safeParse(raw);
  if (!lib.success) {
    pack.problems.push(...issueLines(lib.error).map((p) => `${file}: library: ${p}`));
    return;
  }
  // Site files extend shipped lists rather than replace them: exceptions grow without editing our files.
  for (const [name, values] of Object.entries(lib.data.lists)) pack.lists.set(name, [...(pack.lists.get(name) ?? []), ...values]);
  for (const [name, body] of Object.entries(lib.data.macros)) {
    pack.macros.set(name, body);
    pack.macroFiles.set(name, file);
  }
  pack.siteExceptions.push(...lib.data.exceptions);
}

function readWindowRule(raw: object, file: string, source: string, pack: PackSources): void {
  const windowRule = TimedRuleSchema.safeParse(raw);
  const id = String((raw as { id?: unknown }).id ?? "(no id)");
  if (!windowRule.success) pack.problems.push(...issueLines(windowRule.error).map((p) => `${file}: rule ${id}: ${p}`));
  else pack.windowDefinitions.push({ definition: windowRule.data, source, file });
}

function readRule(raw: unknown, file: string, source: string, pack: PackSources): void {
  const parsed = RuleSchema.safeParse(raw);
  const id = typeof raw === "object" && raw !== null && "id" in raw ? String((raw as { id: unknown }).id) : "(no id)";
  if (!parsed.success) pack.problems.push(...issueLines(parsed.error).map((p) => `${file}: rule ${id}: ${p}`));
  else pack.definitions.push({ definition: parsed.data, source, file });
}

/**
 * Every macro compiled once up front, so a broken one (a regex RE2 cannot run, an unknown list) is reported against
 * its own file even when no rule uses it.
 */
function checkMacros(macroFiles: ReadonlyMap<string, string>, ctx: CompileContext, problems: string[]): void {
  for (const [name, file] of macroFiles) {
    try {
      compileCondition({ macro: name }, ctx);
    } catch (err) {
      problems.push(`${file}: ${(err as Error).message}`);
    }
  }
}

/** Records the rule id as defined in `source`; false (and a problem) when an earlier file already used it. */
function claimId(id: string, source: string, seen: Map<string, string>, problems: string[]): boolean {
  const earlier = seen.get(id);
  if (earlier !== undefined) {
    problems.push(`${source}: rule ${id}: id already used by ${earlier}`);
    return false;
  }
  seen.set(id, source);
  return true;
}

function compileRule(
  definition: RuleDefinition,
  source: string,
  siteExceptions: readonly (Exceptions & { rule: string })[],
  ctx: CompileContext,
  systemRoutineOf: () => Predicate,
): CompiledRule {
  const exceptions = mergeExceptions([definition.exceptions, ...siteExceptions.filter((e) => e.rule === definition.id || e.rule === "*")]);
  const condition = compileCondition(definition.condition, ctx);
  const isSystemRoutine = systemRoutineOf();
  const routine = definition.exclude_system_components ? isSystemRoutine : undefined;
  const excused = exceptionPredicate(exceptions, ctx);
  const matches: Predicate = (event) => condition(event) && !routine?.(event) && !excused?.(event);
  const resources = requiredValues(definition.condition, "objectRef.resource", ctx);
  const verbs = requiredValues(definition.condition, "verb", ctx);
  const fields = fieldsRead(definition.condition, ctx);
  return { definition, source, exceptions, resources, verbs, fields, isSystemRoutine, matches };
}
