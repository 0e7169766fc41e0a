import { type Alert, AlertSchema, isRfc3339Time } from "@k8s-audit/core";
import { z } from "zod";
import type { Bucket, EventFacts, PartialRecord } from "./bucket.js";

/**
 * The windows topic's record format (docs/decisions/0017-windows-wire-format.md). Every record carries `v`; a reader
 * dead-letters a version it does not know instead of guessing, so a rolling upgrade that changes the format can never
 * misread counts. Records written before the format was versioned carry no `v` and are the same shape as version 1.
 */
export const WINDOWS_RECORD_VERSION = 1;

/** "Events partition `source` (of `sources`) has been read up to event time `to`; this batch began at `from`." */
export interface Tick {
  source: number;
  sources: number;
  from: number;
  to: number;
}

const OPTIONAL_FACTS = ["resource", "namespace", "name", "ip", "user", "userAgent"] as const;

/** Facts as a positional array on the wire: partial counts are the internal topic's volume. */
const WireFactsSchema = z
  .tuple([z.number(), z.string(), z.string(), z.string(), z.string(), z.string()])
  .rest(z.string().nullable())
  .refine((f) => f.length <= 6 + OPTIONAL_FACTS.length, "too many facts");
type WireFacts = z.infer<typeof WireFactsSchema>;

const Counted = z.array(z.tuple([z.string(), z.number()]));
const WireBucketSchema = z.object({
  c: z.number().int().min(1),
  h: z.number().int().min(0),
  f: WireFactsSchema,
  t0: z.number(),
  t1: z.number(),
  d: z.array(z.string()).optional(),
  v: Counted.optional(),
  r: Counted.optional(),
  i: Counted.optional(),
  a: z.array(z.string()).optional(),
  st: z.array(z.object({ step: z.number().int().min(0), time: z.number(), auditID: z.string() })).optional(),
});
type WireBucket = z.infer<typeof WireBucketSchema>;

const WirePartialSchema = z.object({ rule: z.string(), key: z.string(), start: z.number(), bucket: WireBucketSchema });
const Version = z.literal(WINDOWS_RECORD_VERSION).optional();

/** One record of the windows topic: a tick, a batch of partial counts, or a batch of per-event alerts to fold. */
const WindowsRecordSchema = z.union([
  z.object({
    v: Version,
    tick: z.object({ source: z.number().int().min(0), sources: z.number().int().min(1), from: z.number(), to: z.number() }),
  }),
  z.object({ v: Version, partials: z.array(WirePartialSchema) }),
  z.object({ v: Version, alerts: z.array(AlertSchema) }),
]);

export type WindowsRecord = { tick: Tick } | { partials: PartialRecord[] } | { alerts: Alert[] };

const factsToWire = (f: EventFacts): WireFacts => [
  f.time,
  f.auditID,
  f.cluster,
  f.verb,
  f.requestURI,
  f.stage,
  ...OPTIONAL_FACTS.map((k) => f[k] ?? null),
];

function factsFromWire(w: WireFacts): EventFacts {
  const facts: EventFacts = { time: w[0], auditID: w[1], cluster: w[2], verb: w[3], requestURI: w[4], stage: w[5] };
  OPTIONAL_FACTS.forEach((k, i) => {
    const v = w[6 + i];
    if (typeof v === "string") facts[k] = v;
  });
  return facts;
}

/** One partial count as JSON (an element of a `partials` record). */
export function encodePartial(p: PartialRecord): string {
  const b = p.bucket;
  const wire: WireBucket = {
    c: b.count,
    h: b.hits,
    // The seed matters only while a bucket has one event (then it is the first); after that the maps carry it.
    f: factsToWire(b.first),
    t0: b.minTime,
    t1: b.maxTime,
    // A single event's sample is its own auditID, already in the facts.
    ...(b.count === 1 && b.sample.length === 1 ? {} : { a: b.sample }),
    ...(b.distinct ? { d: [...b.distinct] } : {}),
    ...(b.verbs ? { v: [...b.verbs], r: [...(b.resources ?? [])], i: [...(b.ips ?? [])] } : {}),
    ...(b.steps ? { st: b.steps } : {}),
  };
  return JSON.stringify({ rule: p.rule, key: p.key, start: p.start, bucket: wire });
}

export function decodePartial(raw: z.infer<typeof WirePartialSchema>): PartialRecord {
  const w = raw.bucket;
  const first = factsFromWire(w.f);
  const bucket: Bucket = {
    count: w.c,
    hits: w.h,
    first,
    seed: first,
    minTime: w.t0,
    maxTime: w.t1,
    sample: w.a ?? [first.auditID],
    ...(w.d ? { distinct: new Set(w.d) } : {}),
    ...(w.v ? { verbs: new Map(w.v), resources: new Map(w.r ?? []), ips: new Map(w.i ?? []) } : {}),
    ...(w.st ? { steps: w.st } : {}),
  };
  return { rule: raw.rule, key: raw.key, start: raw.start, bucket };
}

/** A record of several already-encoded partials or alerts (see PartialCountCache: many to a record). */
export function encodeBatch(field: "partials" | "alerts", encoded: readonly string[]): string {
  return `{"v":${WINDOWS_RECORD_VERSION},"${field}":[${encoded.join(",")}]}`;
}

export const encodeTick = (tick: Tick): string => JSON.stringify({ v: WINDOWS_RECORD_VERSION, tick });

/**
 * Reads one windows-topic record, checked whole: a record is used entirely or not at all, so a foreign, damaged or
 * newer-version record can neither stop the stage nor corrupt a window. The reason names what is wrong.
 */
export function decodeWindowsRecord(value: string): { record: WindowsRecord } | { unusable: string } {
  let raw: unknown;
  try {
    raw = JSON.parse(value);
  } catch {
    return { unusable: "not JSON" };
  }
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) return { unusable: "not a JSON object" };
  const version = (raw as { v?: unknown }).v;
  if (version !== undefined && version !== WINDOWS_RECORD_VERSION)
    return { unusable: `record version ${JSON.stringify(version)}; this build reads version ${WINDOWS_RECORD_VERSION}` };
  if (!("tick" in raw || "partials" in raw || "alerts" in raw)) return { unusable: "neither tick, partials nor alerts" };
  const parsed = WindowsRecordSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    return {
      unusable: `invalid ${Object.keys(raw).find((k) => k !== "v")}: ${issue?.path.join(".") ?? ""} ${issue?.message ?? ""}`.trim(),
    };
  }
  const data = parsed.data;
  if ("tick" in data) return { record: { tick: data.tick } };
  if ("partials" in data) return { record: { partials: data.partials.map(decodePartial) } };
  for (const a of data.alerts) if (!isRfc3339Time(a["@timestamp"])) return { unusable: "alert @timestamp is not an RFC 3339 time" };
  return { record: { alerts: data.alerts as Alert[] } };
}
