import type { AuditEvent } from "@k8s-audit/core";
import { z } from "zod";
import { VIEW_FIELDS } from "./request.js";
import { compileGlob, compileRegex } from "./text-match.js";

/**
 * The condition language of rules: a small tree of all / any / not / macro references and field tests, compiled once
 * into closures. Field paths are dotted; an array anywhere along the path means "any element" (Falco and Sigma do the same).
 */
const OPERATORS = ["equals", "in", "prefix", "suffix", "contains", "glob", "regex", "cidr", "exists", "gt", "gte", "lt", "lte"] as const;
const Scalar = z.union([z.string(), z.number(), z.boolean()]);
const ListRef = z.object({ list: z.string() }).strict();
const StringOrList = z.union([z.string(), z.array(z.string()), ListRef]);

const FieldTestSchema = z
  .object({
    field: z.string().min(1),
    equals: Scalar.optional(),
    in: z.union([z.array(Scalar), ListRef]).optional(),
    prefix: StringOrList.optional(),
    suffix: StringOrList.optional(),
    contains: StringOrList.optional(),
    glob: StringOrList.optional(),
    regex: z.string().optional(),
    cidr: StringOrList.optional(),
    exists: z.boolean().optional(),
    gt: z.number().optional(),
    gte: z.number().optional(),
    lt: z.number().optional(),
    lte: z.number().optional(),
    ignore_case: z.boolean().optional(),
    /** Every value the path reaches must pass (vacuously true when it reaches none); by default any one value does. */
    every: z.boolean().optional(),
  })
  .strict()
  .refine((t) => OPERATORS.filter((op) => t[op] !== undefined).length === 1, {
    message: `a field test needs exactly one operator of: ${OPERATORS.join(", ")}`,
  });

export type FieldTest = z.infer<typeof FieldTestSchema>;
export type Condition = { all: Condition[] } | { any: Condition[] } | { not: Condition } | { macro: string } | FieldTest;

export const ConditionSchema: z.ZodType<Condition> = z.lazy(() =>
  z.union([
    z.object({ all: z.array(ConditionSchema).min(1) }).strict(),
    z.object({ any: z.array(ConditionSchema).min(1) }).strict(),
    z.object({ not: ConditionSchema }).strict(),
    z.object({ macro: z.string().min(1) }).strict(),
    FieldTestSchema,
  ]),
);

export type Predicate = (event: unknown) => boolean;

export interface CompileContext {
  lists: ReadonlyMap<string, readonly (string | number | boolean)[]>;
  macros: ReadonlyMap<string, Condition>;
  /** Each macro compiled once per pack and shared by every rule that uses it (filled while compiling). */
  compiledMacros?: Map<string, Predicate>;
}

/**
 * Splits a path into keys: dots separate them, and a key containing dots or slashes (labels, annotations) is written
 * in brackets: `requestObject.metadata.labels[pod-security.kubernetes.io/enforce]`.
 */
function pathSegments(path: string): string[] {
  const segments: string[] = [];
  const re = /([^.[\]]+)|\[([^\]]+)\]/g;
  for (const m of path.matchAll(re)) segments.push((m[1] ?? m[2]) as string);
  return segments;
}

/**
 * Resolves a path into every value it reaches (flattening arrays). Two special keys: `*` takes every value of an
 * object, `~keys` its keys (so `requestObject.data.~keys` tests a ConfigMap's key names).
 */
export function compilePath(path: string): (root: unknown) => unknown[] {
  const visit = compileVisitor(path);
  return (root) => {
    const out: unknown[] = [];
    visit(root, (v) => {
      out.push(v);
      return false;
    });
    return out;
  };
}

/**
 * The allocation-free form of compilePath used on the hot path: calls `found` for each value the path reaches until it
 * returns true, and returns whether it did. Most paths cross no array, so most calls walk a few properties and stop.
 */
export function compileVisitor(path: string): (root: unknown, found: (value: unknown) => boolean) => boolean {
  const segments = pathSegments(path);
  // A path into the request view (the effective user, the resulting object, pod specs, ...): computed from the event.
  const view = segments.length > 0 ? VIEW_FIELDS[segments[0] as string] : undefined;
  if (view) {
    const rest = plainVisitor(segments.slice(1));
    const plain = plainVisitor(segments);
    return (root, found) => (isAuditEvent(root) ? rest(view(root), found) : plain(root, found));
  }
  return plainVisitor(segments);
}

/** Audit events have a string auditID; other roots (a container, a partial record) are walked as they are. */
function isAuditEvent(root: unknown): root is AuditEvent {
  return typeof (root as { auditID?: unknown } | null)?.auditID === "string";
}

function plainVisitor(segments: string[]): (root: unknown, found: (value: unknown) => boolean) => boolean {
  const last = segments.length;
  // These three closures are made once per compiled path, not per event.
  const walk = (value: unknown, depth: number, found: (value: unknown) => boolean): boolean => {
    if (value === undefined || value === null) return false;
    if (Array.isArray(value)) return anyElement(value, depth, found);
    if (depth === last) return found(value);
    if (typeof value !== "object") return false;
    const key = segments[depth] as string;
    const record = value as Record<string, unknown>;
    if (key === "*") return anyProperty(record, depth + 1, found);
    if (key === "~keys") return depth + 1 === last && anyKey(record, found);
    return walk(record[key], depth + 1, found);
  };
  const anyElement = (list: unknown[], depth: number, found: (value: unknown) => boolean): boolean => {
    for (const element of list) if (walk(element, depth, found)) return true;
    return false;
  };
  const anyProperty = (record: Record<string, unknown>, depth: number, found: (value: unknown) => boolean): boolean => {
    for (const k in record) if (walk(record[k], depth, found)) return true;
    return false;
  };
  // Most paths meet plain objects all the way down: walk those with a loop, and recurse only from an array or wildcard.
  return (root, found) => {
    let value = root;
    for (let depth = 0; depth < last; depth++) {
      if (value === undefined || value === null || typeof value !== "object") return false;
      const key = segments[depth] as string;
      if (Array.isArray(value) || key === "*" || key === "~keys") return walk(value, depth, found);
      value = (value as Record<string, unknown>)[key];
    }
    if (value === undefined || value === null) return false;
    return Array.isArray(value) ? walk(value, last, found) : found(value);
  };
}

function parseIPv4(ip: string): number | undefined {
  const parts = ip.split(".");
  if (parts.length !== 4) return undefined;
  let n = 0;
  for (const p of parts) {
    const octet = Number(p);
    if (!/^\d{1,3}$/.test(p) || octet > 255) return undefined;
    n = n * 256 + octet;
  }
  return n;
}

function expandIPv6(ip: string): bigint | undefined {
  const zone = ip.indexOf("%");
  const addr = zone >= 0 ? ip.slice(0, zone) : ip;
  const halves = addr.split("::");
  if (halves.length > 2) return undefined;
  const head = halves[0] ? halves[0].split(":") : [];
  const tail = halves.length === 2 && halves[1] ? halves[1].split(":") : [];
  const missing = 8 - head.length - tail.length;
  if (halves.length === 1 ? head.length !== 8 : missing < 1) return undefined;
  const groups = [...head, ...Array<string>(halves.length === 2 ? missing : 0).fill("0"), ...tail];
  let n = 0n;
  for (const g of groups) {
    if (!/^[0-9a-fA-F]{1,4}$/.test(g)) return undefined;
    n = (n << 16n) | BigInt(Number.parseInt(g, 16));
  }
  return n;
}

function anyKey(record: Record<string, unknown>, found: (value: unknown) => boolean): boolean {
  for (const k in record) if (found(k)) return true;
  return false;
}

/** A CIDR membership test for IPv4 and IPv6 (IPv4-mapped IPv6 addresses are matched as IPv4). */
export function compileCidr(cidr: string): (ip: string) => boolean {
  const [base = "", bitsText] = cidr.split("/");
  const v4 = parseIPv4(base);
  if (v4 !== undefined) {
    const bits = bitsText === undefined ? 32 : Number(bitsText);
    if (!(bits >= 0 && bits <= 32)) throw new Error(`invalid CIDR ${cidr}`);
    const mask = bits === 0 ? 0 : (0xffffffff << (32 - bits)) >>> 0;
    const net = (v4 & mask) >>> 0;
    return (ip) => {
      const candidate = parseIPv4(ip.startsWith("::ffff:") ? ip.slice(7) : ip);
      return candidate !== undefined && (candidate & mask) >>> 0 === net;
    };
  }
  const v6 = expandIPv6(base);
  if (v6 === undefined) throw new Error(`invalid CIDR ${cidr}`);
  const bits = BigInt(bitsText === undefined ? 128 : Number(bitsText));
  if (bits < 0n || bits > 128n) throw new Error(`invalid CIDR ${cidr}`);
  const mask = bits === 0n ? 0n : ((1n << bits) - 1n) << (128n - bits);
  const net = v6 & mask;
  return (ip) => {
    const candidate = expandIPv6(ip);
    return candidate !== undefined && (candidate & mask) === net;
  };
}

function asStrings(value: FieldTest["prefix"], ctx: CompileContext): string[] {
  if (value === undefined) return [];
  if (typeof value === "string") return [value];
  if (Array.isArray(value)) return value;
  return resolveList(value.list, ctx).map(String);
}

function resolveList(name: string, ctx: CompileContext): readonly (string | number | boolean)[] {
  const list = ctx.lists.get(name);
  if (!list) throw new Error(`unknown list "${name}"`);
  return list;
}

function compileFieldTest(test: FieldTest, ctx: CompileContext): Predicate {
  const visit = compileVisitor(test.field);
  const fold = test.ignore_case ? (s: string) => s.toLowerCase() : (s: string) => s;
  // `every`: no value fails (the visitor stops at the first that does).
  const anyValue = test.every
    ? (match: (v: unknown) => boolean): Predicate => {
        const fails = (v: unknown) => !match(v);
        return (event) => !visit(event, fails);
      }
    : (match: (v: unknown) => boolean): Predicate =>
        (event) =>
          visit(event, match);
  const anyString = (match: (s: string) => boolean) => anyValue((v) => typeof v === "string" && match(fold(v)));

  if (test.exists !== undefined) {
    if (test.every) throw new Error(`field test on ${test.field}: every does not apply to exists`);
    const want = test.exists;
    const reached = () => true;
    return (event) => visit(event, reached) === want;
  }
  if (test.equals !== undefined) {
    const want = typeof test.equals === "string" ? fold(test.equals) : test.equals;
    return anyValue((v) => (typeof v === "string" ? fold(v) === want : v === want));
  }
  if (test.in !== undefined) {
    const list = Array.isArray(test.in) ? test.in : resolveList(test.in.list, ctx);
    const set = new Set(list.map((x) => (typeof x === "string" ? fold(x) : x)));
    return anyValue((v) => set.has(typeof v === "string" ? fold(v) : (v as number | boolean)));
  }
  if (test.prefix !== undefined) {
    const prefixes = asStrings(test.prefix, ctx).map(fold);
    return anyString((s) => {
      for (const p of prefixes) if (s.startsWith(p)) return true;
      return false;
    });
  }
  if (test.suffix !== undefined) {
    const suffixes = asStrings(test.suffix, ctx).map(fold);
    return anyString((s) => {
      for (const p of suffixes) if (s.endsWith(p)) return true;
      return false;
    });
  }
  if (test.contains !== undefined) {
    const needles = asStrings(test.contains, ctx).map(fold);
    return anyString((s) => {
      for (const n of needles) if (s.includes(n)) return true;
      return false;
    });
  }
  if (test.glob !== undefined) {
    const patterns = asStrings(test.glob, ctx).map((g) => compileGlob(g, test.ignore_case === true));
    return anyValue((v) => {
      if (typeof v !== "string") return false;
      for (const matches of patterns) if (matches(v)) return true;
      return false;
    });
  }
  if (test.regex !== undefined) {
    const matches = compileRegex(test.regex, test.ignore_case === true);
    return anyValue((v) => typeof v === "string" && matches(v));
  }
  if (test.cidr !== undefined) {
    const nets = asStrings(test.cidr, ctx).map(compileCidr);
    return anyValue((v) => typeof v === "string" && nets.some((inNet) => inNet(v)));
  }
  const numeric = (cmp: (n: number) => boolean) =>
    anyValue((v) => {
      const n = typeof v === "number" ? v : typeof v === "string" && v.trim() !== "" ? Number(v) : Number.NaN;
      return !Number.isNaN(n) && cmp(n);
    });
  if (test.gt !== undefined) return numeric((n) => n > (test.gt as number));
  if (test.gte !== undefined) return numeric((n) => n >= (test.gte as number));
  if (test.lt !== undefined) return numeric((n) => n < (test.lt as number));
  if (test.lte !== undefined) return numeric((n) => n <= (test.lte as number));
  throw new Error(`field test on ${test.field} has no operator`);
}

/** Compiles a condition tree; macro cycles and unknown macros or lists are reported. */
export function compileCondition(condition: Condition, ctx: CompileContext, macroStack: string[] = []): Predicate {
  if ("all" in condition) {
    const parts = condition.all.map((c) => compileCondition(c, ctx, macroStack));
    // Plain loops: a callback per evaluation would be a closure allocated per event and rule.
    return (event) => {
      for (const p of parts) if (!p(event)) return false;
      return true;
    };
  }
  if ("any" in condition) {
    const parts = condition.any.map((c) => compileCondition(c, ctx, macroStack));
    return (event) => {
      for (const p of parts) if (p(event)) return true;
      return false;
    };
  }
  if ("not" in condition) {
    const inner = compileCondition(condition.not, ctx, macroStack);
    return (event) => !inner(event);
  }
  if ("macro" in condition) {
    const name = condition.macro;
    if (macroStack.includes(name)) throw new Error(`macro cycle: ${[...macroStack, name].join(" → ")}`);
    const body = ctx.macros.get(name);
    if (!body) throw new Error(`unknown macro "${name}"`);
    ctx.compiledMacros ??= new Map();
    const shared = ctx.compiledMacros.get(name);
    if (shared) return shared;
    let inner: Predicate;
    try {
      inner = compileCondition(body, ctx, [...macroStack, name]);
    } catch (err) {
      // Name the macro: its body lives in a library file, not in the rule that uses it.
      throw new Error(`macro ${name}: ${(err as Error).message}`);
    }
    // Many rules test the same macro (system_component, secret_resource, ...) on the same event, one after another:
    // the answer for the event just seen is remembered, so each macro is evaluated once per event.
    let lastEvent: unknown;
    let lastAnswer = false;
    const memo: Predicate = (event) => {
      if (event !== lastEvent) {
        lastAnswer = inner(event);
        lastEvent = event;
      }
      return lastAnswer;
    };
    ctx.compiledMacros.set(name, memo);
    return memo;
  }
  return compileFieldTest(condition, ctx);
}

/**
 * The values a field must take for the condition to hold, when the condition pins it (an `equals` or `in` on that
 * field at the top of an `all`, or on every branch of an `any`); undefined when it does not. The detector indexes rules
 * by `objectRef.resource` this way, so an event is only tested against the rules that can match it.
 */
export function requiredValues(condition: Condition, field: string, ctx: CompileContext, depth = 0): Set<string> | undefined {
  if (depth > 32) return undefined;
  if ("all" in condition) return requiredByAll(condition.all, field, ctx, depth + 1);
  if ("any" in condition) return requiredByAny(condition.any, field, ctx, depth + 1);
  if ("not" in condition) return undefined;
  if ("macro" in condition) {
    const body = ctx.macros.get(condition.macro);
    return body ? requiredValues(body, field, ctx, depth + 1) : undefined;
  }
  return requiredByFieldTest(condition, field, ctx);
}

/** What every part that pins the field allows (the intersection); undefined when no part pins it. */
function requiredByAll(parts: Condition[], field: string, ctx: CompileContext, depth: number): Set<string> | undefined {
  let result: Set<string> | undefined;
  for (const part of parts) {
    const values = requiredValues(part, field, ctx, depth);
    if (values) result = result ? new Set([...result].filter((v) => values.has(v))) : values;
  }
  return result;
}

/** What any branch allows (the union), when every branch pins the field. */
function requiredByAny(branches: Condition[], field: string, ctx: CompileContext, depth: number): Set<string> | undefined {
  const union = new Set<string>();
  for (const branch of branches) {
    const values = requiredValues(branch, field, ctx, depth);
    if (!values) return undefined;
    for (const v of values) union.add(v);
  }
  return union;
}

function requiredByFieldTest(test: FieldTest, field: string, ctx: CompileContext): Set<string> | undefined {
  // An `every` test holds vacuously when the field is absent, so it pins nothing.
  if (test.field !== field || test.ignore_case || test.every) return undefined;
  if (typeof test.equals === "string") return new Set([test.equals]);
  if (test.in === undefined) return undefined;
  const list = Array.isArray(test.in) ? test.in : ctx.lists.get(test.in.list);
  return list?.every((v) => typeof v === "string") ? new Set(list as string[]) : undefined;
}

/** Every field path the condition tests, through its macros (an evasion test asks what a rule looks at). */
export function fieldsRead(condition: Condition, ctx: CompileContext, out = new Set<string>(), seen = new Set<string>()): Set<string> {
  if ("all" in condition) for (const c of condition.all) fieldsRead(c, ctx, out, seen);
  else if ("any" in condition) for (const c of condition.any) fieldsRead(c, ctx, out, seen);
  else if ("not" in condition) fieldsRead(condition.not, ctx, out, seen);
  else if ("macro" in condition) {
    const body = ctx.macros.get(condition.macro);
    if (body && !seen.has(condition.macro)) {
      seen.add(condition.macro);
      fieldsRead(body, ctx, out, seen);
    }
  } else out.add(condition.field);
  return out;
}
