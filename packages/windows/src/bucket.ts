import { type AuditEvent, trustedSourceIP } from "@k8s-audit/core";
import { effectiveUser } from "@k8s-audit/rules";

/** What a timed rule keeps of one event: enough to count it, rank contributors and describe the alert. */
export interface EventFacts {
  time: number;
  auditID: string;
  cluster: string;
  verb: string;
  requestURI: string;
  stage: string;
  resource?: string;
  namespace?: string;
  name?: string;
  ip?: string;
  user?: string;
  userAgent?: string;
}

export function factsOf(event: AuditEvent, time: number): EventFacts {
  return {
    time,
    auditID: event.auditID,
    cluster: event.cluster ?? "default",
    verb: event.verb,
    requestURI: event.requestURI,
    stage: event.stage,
    resource: event.objectRef?.resource,
    namespace: event.objectRef?.namespace,
    name: event.objectRef?.name,
    ip: trustedSourceIP(event),
    user: effectiveUser(event).username,
    userAgent: event.userAgent,
  };
}

/** A sequence step matched by one event. */
export interface StepHit {
  time: number;
  auditID: string;
  step: number;
}

/** One key's share of one window: counts are sums, so partial buckets from many instances merge exactly. */
export interface Bucket {
  count: number;
  /** Events that also met the rule's ratio condition. */
  hits: number;
  /** The earliest event (by time, then auditID): the alert describes it, whatever the arrival order. */
  first: EventFacts;
  /** The first event added, which seeds the contributor maps when a second arrives (single-event buckets stay small). */
  seed: EventFacts;
  minTime: number;
  maxTime: number;
  distinct?: Set<string>;
  verbs?: Map<string, number>;
  resources?: Map<string, number>;
  ips?: Map<string, number>;
  /** A sample of the events' auditIDs, as evidence. */
  sample: string[];
  steps?: StepHit[];
}

export const MAX_DISTINCT = 10_000;
const MAX_SAMPLE_IDS = 10;
const MAX_STEP_HITS = 1_000;
/** Contributors are counted exactly for a bucket's first events, then every 4th event weighted 4: proportions survive. */
const EXACT_CONTRIBUTORS = 64;

const earlier = (a: EventFacts, b: EventFacts) => a.time < b.time || (a.time === b.time && a.auditID < b.auditID);

/**
 * Distinct contributors tracked per map: a cluster-wide bucket would otherwise remember every address it saw. The
 * top three are what an alert shows, and a heavy contributor is among the first few dozen seen.
 */
const MAX_CONTRIBUTORS = 32;

const bump = (m: Map<string, number>, k: string | undefined, weight: number) => {
  if (k === undefined) return;
  const n = m.get(k);
  if (n !== undefined) m.set(k, n + weight);
  else if (m.size < MAX_CONTRIBUTORS) m.set(k, weight);
};

export function newBucket(facts: EventFacts, withDistinct: boolean): Bucket {
  return {
    count: 0,
    hits: 0,
    first: facts,
    seed: facts,
    minTime: facts.time,
    maxTime: facts.time,
    sample: [],
    ...(withDistinct ? { distinct: new Set<string>() } : {}),
  };
}

function contributorMaps(bucket: Bucket): void {
  if (bucket.verbs) return;
  bucket.verbs = new Map();
  bucket.resources = new Map();
  bucket.ips = new Map();
  // The seed is the single event counted so far.
  bump(bucket.verbs, bucket.seed.verb, 1);
  bump(bucket.resources, bucket.seed.resource, 1);
  bump(bucket.ips, bucket.seed.ip, 1);
}

/**
 * Counts one event given its parts (no facts object: most events land in a bucket that exists). Returns whether the
 * event is earlier than the bucket's first, in which case the caller makes it the first. `lean` buckets (sequences,
 * silence) keep counts, times and steps, not contributors or samples.
 */
export function countEvent(
  bucket: Bucket,
  time: number,
  auditID: string,
  verb: string,
  resource: string | undefined,
  ip: string | undefined,
  distinct: string | undefined,
  hit: boolean,
  steps: number[] | undefined,
  lean: boolean,
): boolean {
  bucket.count++;
  if (hit) bucket.hits++;
  if (time < bucket.minTime) bucket.minTime = time;
  if (time > bucket.maxTime) bucket.maxTime = time;
  if (distinct !== undefined && bucket.distinct && bucket.distinct.size < MAX_DISTINCT) bucket.distinct.add(distinct);
  if (!lean) {
    if (bucket.count > 1 && (bucket.count <= EXACT_CONTRIBUTORS || (bucket.count & 3) === 0)) {
      contributorMaps(bucket);
      const weight = bucket.count <= EXACT_CONTRIBUTORS ? 1 : 4;
      bump(bucket.verbs as Map<string, number>, verb, weight);
      bump(bucket.resources as Map<string, number>, resource, weight);
      bump(bucket.ips as Map<string, number>, ip, weight);
    }
    if (bucket.sample.length < MAX_SAMPLE_IDS) bucket.sample.push(auditID);
  }
  if (steps) {
    bucket.steps ??= [];
    for (const step of steps) if (bucket.steps.length < MAX_STEP_HITS) bucket.steps.push({ time, auditID, step });
  }
  const first = bucket.first;
  return time < first.time || (time === first.time && auditID < first.auditID);
}

const mergeCounts = (into: Map<string, number>, from: Map<string, number>) => {
  for (const [k, n] of from) bump(into, k, n);
};

/** Adds a partial bucket (another instance's, or another batch's, share of the same key and window). */
export function mergeBucket(into: Bucket, from: Bucket): void {
  contributorMaps(into);
  contributorMaps(from);
  into.count += from.count;
  into.hits += from.hits;
  if (earlier(from.first, into.first)) into.first = from.first;
  into.minTime = Math.min(into.minTime, from.minTime);
  into.maxTime = Math.max(into.maxTime, from.maxTime);
  if (into.distinct && from.distinct) for (const v of from.distinct) if (into.distinct.size < MAX_DISTINCT) into.distinct.add(v);
  mergeCounts(into.verbs as Map<string, number>, from.verbs as Map<string, number>);
  mergeCounts(into.resources as Map<string, number>, from.resources as Map<string, number>);
  mergeCounts(into.ips as Map<string, number>, from.ips as Map<string, number>);
  for (const id of from.sample) if (into.sample.length < MAX_SAMPLE_IDS) into.sample.push(id);
  if (from.steps) {
    into.steps ??= [];
    for (const s of from.steps) if (into.steps.length < MAX_STEP_HITS) into.steps.push(s);
  }
}

/** "k=n,k=n,k=n": the biggest contributors, ties by name, so the label is stable. */
export function topContributors(bucket: Bucket, which: "verbs" | "resources" | "ips", n = 3): string {
  let counts = bucket[which];
  if (!counts) {
    const only = which === "verbs" ? bucket.seed.verb : which === "resources" ? bucket.seed.resource : bucket.seed.ip;
    counts = new Map(only === undefined ? [] : [[only, 1]]);
  }
  return [...counts]
    .sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1))
    .slice(0, n)
    .map(([k, c]) => `${k}=${c}`)
    .join(",");
}

/** A partial bucket on the internal windows topic. */
export interface PartialRecord {
  rule: string;
  key: string;
  start: number;
  bucket: Bucket;
}
