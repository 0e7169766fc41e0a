import { type AuditEvent, trustedSourceIP } from "@k8s-audit/core";
import { type CompiledWindowRule, compileVisitor, type TimedRuleDefinition } from "@k8s-audit/rules";
import type { Bucket, EventFacts } from "./bucket.js";
import type { CountMinSketch } from "./sketch.js";

/** What the engine keeps per timed rule: its open windows, and what it remembers across them. */
export interface ChainLink {
  start: number;
  ids: string[];
}

export interface RuleState {
  rule: CompiledWindowRule;
  windowMs: number;
  /** Sequences and silence need counts, times and steps only. */
  lean: boolean;
  keyOf: (e: AuditEvent) => string;
  distinctOf?: (e: AuditEvent) => string | undefined;
  /** Open windows by start time, each with its buckets by key. */
  windows: Map<number, Map<string, Bucket>>;
  sketches: Map<number, CountMinSketch>;
  /** Window rules with a baseline: each key's moving average. */
  baselines: Map<string, { average: number; lastWindow: number }>;
  /** Sequence rules: per key, the newest chain that reached each step. */
  chains: Map<string, (ChainLink | undefined)[]>;
  /** Silence rules: per key, the newest event in closed windows, and the newest event and wall time of any arrival. */
  lastClosed: Map<string, { time: number; events: number }>;
  arrivals: Map<string, { facts: EventFacts; wall: number; events: number }>;
  reported: Map<string, number>;
  /** Start of the oldest open window, so most events cost one comparison to know nothing closes. */
  oldestOpen: number;
  /** Per open window: the offset of the first partial record merged into it (scale-out), to hold commits back to. */
  firstOffsets: Map<number, bigint>;
  /** The window most recently counted into, and its buckets. */
  lastStart?: number;
  lastBuckets?: Map<string, Bucket>;
}

/** Sequences and silence are bucketed by minute; the same one-window lateness applies. */
export const SEQUENCE_BUCKET_MS = 60_000;

/** The first value a path reaches, as a string (the conditions' visitor, stopping at the first value). */
export function firstValue(path: string): (e: AuditEvent) => string | undefined {
  if (path === "sourceIP") return (e) => trustedSourceIP(e);
  const visit = compileVisitor(path);
  // One capturing callback for the rule, not one per event.
  let found: unknown;
  const capture = (v: unknown) => {
    found = v;
    return true;
  };
  return (e) => {
    found = undefined;
    visit(e, capture);
    return found === undefined ? undefined : String(found);
  };
}

/** What a missing group-by value is counted under: an event without a user or an address still counts. */
export const MISSING_KEY_PART = "(none)";

/** The group-by key: the parts joined with "|", a missing part as MISSING_KEY_PART. */
export function keyFunction(parts: ((e: AuditEvent) => string | undefined)[]): (e: AuditEvent) => string {
  return (e) => {
    let key = "";
    for (let i = 0; i < parts.length; i++) {
      const v = (parts[i] as (e: AuditEvent) => string | undefined)(e) ?? MISSING_KEY_PART;
      key = i === 0 ? v : `${key}|${v}`;
    }
    return key;
  };
}

export function windowLength(definition: TimedRuleDefinition): number {
  if (definition.kind === "window") return definition.window * 1000;
  if (definition.kind === "silence") return definition.gap * 1000;
  return SEQUENCE_BUCKET_MS;
}

/** Least recently updated first: re-inserting moves a key to the end. */
export function touch<V>(map: Map<string, V>, key: string, value: V): void {
  map.delete(key);
  map.set(key, value);
}
