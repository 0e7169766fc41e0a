import type { AuditEvent } from "@k8s-audit/core";

/** One audit event read from an input: what orders it, and where it was read. */
export interface Entry {
  /** The event time (stageTimestamp, else the v1beta1 timestamp) in microseconds since the epoch. */
  micros: number;
  auditID: string;
  stage: string;
  /** requestReceivedTimestamp, "" when absent. */
  received: string;
  /** Which input it came from and its place in that input's reading order: the last tie-breakers. */
  input: number;
  seq: number;
  file: string;
  line: number;
  event: AuditEvent;
}

const isDigit = (code: number) => code >= 48 && code <= 57;
const DOT = 46;
const Z = 90;
/** Where the seconds end in `YYYY-MM-DDTHH:MM:SS…`. */
const SECONDS_END = 19;

/**
 * The second (`YYYY-MM-DDTHH:MM:SS`) of the last UTC time read, and its microseconds. Logs hold many events per
 * second and Date.parse costs more than everything else that orders an event (0.4 µs), so a time in the same second
 * only has its fraction read.
 */
let lastSecond = "";
let lastSecondMicros = 0;

/**
 * An RFC 3339 time in microseconds since the epoch, NaN when it is not a time. Audit events carry microseconds and
 * Date.parse keeps milliseconds (it truncates the rest): without them, two events in one millisecond would be ordered
 * by auditID rather than by time. Microseconds since the epoch are exact in a double until the year 2255.
 */
export function timeMicros(time: string): number {
  const utc = time.charCodeAt(time.length - 1) === Z;
  if (utc && lastSecond !== "" && time.startsWith(lastSecond)) {
    const fraction = utcFractionMicros(time);
    if (fraction >= 0) return lastSecondMicros + fraction;
  }
  const ms = Date.parse(time);
  if (Number.isNaN(ms)) return Number.NaN;
  const micros = ms * 1000 + belowMillisecond(time);
  const fraction = utc ? utcFractionMicros(time) : -1;
  if (fraction >= 0) {
    lastSecond = time.slice(0, SECONDS_END);
    lastSecondMicros = micros - fraction;
  }
  return micros;
}

/** The microseconds of `…SS[.fraction]Z` past the second; -1 when the time does not end that way. */
function utcFractionMicros(time: string): number {
  const zone = time.length - 1;
  if (zone === SECONDS_END) return 0;
  if (time.charCodeAt(SECONDS_END) !== DOT || zone === SECONDS_END + 1) return -1;
  let micros = 0;
  for (let i = SECONDS_END + 1; i < zone; i++) {
    const code = time.charCodeAt(i);
    if (!isDigit(code)) return -1;
    if (i <= SECONDS_END + 6) micros = micros * 10 + (code - 48);
  }
  return micros * 10 ** Math.max(0, SECONDS_END + 7 - zone);
}

/** Fraction digits 4 to 6: the microseconds that Date.parse drops (missing ones count as 0). */
function belowMillisecond(time: string): number {
  const dot = time.indexOf(".");
  if (dot === -1) return 0;
  let end = dot + 1;
  while (isDigit(time.charCodeAt(end))) end++;
  let micros = 0;
  for (let i = dot + 4; i < dot + 7; i++) micros = micros * 10 + (i < end ? time.charCodeAt(i) - 48 : 0);
  return micros;
}

/** A request's stages in the order the apiserver logs them (a tie in time keeps that order); unknown ones last. */
const STAGE_RANK: Record<string, number> = { RequestReceived: 0, ResponseStarted: 1, ResponseComplete: 2, Panic: 3 };
const stageRank = (stage: string) => STAGE_RANK[stage] ?? 4;

const compareText = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

/**
 * The replay order: event time, then auditID, stage and requestReceivedTimestamp; then input and position, so that
 * even exact duplicates (overlapping exports) come out in one deterministic order. Total: no two entries compare equal.
 */
export function compareEntries(a: Entry, b: Entry): number {
  return (
    a.micros - b.micros ||
    compareText(a.auditID, b.auditID) ||
    stageRank(a.stage) - stageRank(b.stage) ||
    compareText(a.stage, b.stage) ||
    compareText(a.received, b.received) ||
    a.input - b.input ||
    a.seq - b.seq
  );
}
