import { type Alert, type AuditEvent, DEFAULT_MAX_FUTURE_SKEW_MS, dedupKey, eventTime } from "@k8s-audit/core";
import type { Detector } from "@k8s-audit/detector";
import { groupByLog, resolveInputs } from "./files.js";
import { compileFilters, type ReplayFilters } from "./filters.js";
import { type EmitEntry, InputCursor, mergeByTime } from "./merge.js";
import { compareEntries, type Entry } from "./order.js";
import { type ReadContext, readLog } from "./read.js";

export interface ReplayProgress {
  bytesRead: number;
  bytesTotal: number;
  events: number;
  /** The file read from most recently. */
  file: string;
}

export interface ReplayOptions {
  inputs: string[];
  filters?: ReplayFilters;
  /** Archives rarely say which cluster they come from: events without one are taken as this cluster. */
  defaultCluster?: string;
  /** Offline detection; omit to only forward events (to Kafka or a webhook). */
  detector?: Detector;
  /** Every matched event, in replay order (forwarding sinks, case raw events). */
  onEvent?: (event: AuditEvent) => void | Promise<void>;
  onAlerts?: (alerts: Alert[]) => void | Promise<void>;
  onProgress?: (progress: ReplayProgress) => void;
  /**
   * Events each log may hold back to put itself in time order (default DEFAULT_REORDER_BUFFER): a log comes out
   * sorted exactly when none of its events is further than this from its place. Memory grows with it times the number
   * of logs.
   */
  reorderBuffer?: number;
  /** How far past the wall clock an event may be stamped before it counts as a future event (default: the detector's). */
  maxFutureSkewMs?: number;
  /** The wall clock, ms since the epoch, taken once at the start (default Date.now()): future events, relative filters. */
  now?: number;
  /**
   * Redact every event as it is read, with the same redactor as the ingest (default true): archives hold Secret
   * values, tokens and passwords in commands, and replay writes to Kafka, Elasticsearch, stdout and files.
   */
  redact?: boolean;
}

export interface MalformedRecord {
  file: string;
  line: number;
  reason: string;
}

/** An event stamped beyond the wall clock (plus maxFutureSkewMs): a broken or hostile clock. */
export interface FutureEvent {
  file: string;
  line: number;
  time: string;
}

export interface ReplaySummary {
  files: number;
  bytes: number;
  eventsRead: number;
  matched: number;
  malformed: number;
  /** Records that are not Kubernetes API calls (a GKE project's billing or compute entries): counted, not replayed. */
  skipped: number;
  /** The first malformed records, with file:line and reason. */
  malformedSamples: MalformedRecord[];
  /** Events stamped in the future: replayed (last, by their time), but kept out of the time span. */
  futureEvents: number;
  /** The first future events, with file:line and time. */
  futureSamples: FutureEvent[];
  /**
   * Events stamped far ahead (more than maxFutureSkewMs) of both the event before and the event after them in their log:
   * a clock gone wrong, even in an archive from the past. Reported; replayed in time order, so they move no window early.
   */
  timeOutliers: number;
  /** The first of them, with file:line and time. */
  outlierSamples: FutureEvent[];
  /** Events read earlier than one before them in the same log; the reorder buffer puts them right unless `late` counts them. */
  outOfOrder: number;
  /** Events handed on after a later one: a log was more out of order than its reorder buffer holds. */
  late: number;
  /**
   * Events dropped as exact copies of one already replayed (same cluster, auditID, received time, stage and stage
   * time: overlapping exports, or the same log given twice). Sorted by time, copies meet, so this costs little.
   */
  duplicates: number;
  /** The most events one log's reorder buffer held at once (at most reorderBuffer). */
  peakBuffered: number;
  alerts: number;
  alertsByRule: Map<string, { name: string; severity: number; count: number }>;
  alertsBySeverity: Map<number, number>;
  principals: Map<string, number>;
  /** The time span of the events replayed, future events left out. */
  firstEvent?: string;
  lastEvent?: string;
  seconds: number;
}

const MAX_SAMPLES = 50;
const MAX_FUTURE_SAMPLES = 10;
/**
 * An apiserver's log is out of time order only by how far concurrent requests race between taking their timestamp and
 * writing their event: a few events. Holding more costs more than it seems: V8 copies a held event at each young-
 * generation collection it lives through and promotes it after two. bench:replay (one core): 100 held runs as fast as
 * no reordering; 1,000 cost 10–17% (some runs promoted every event: 280 → 660 MB); 10,000 cost 20%.
 */
export const DEFAULT_REORDER_BUFFER = 100;
const PROGRESS_EVERY_MS = 100;

/**
 * Streams archived audit logs through the filters and (optionally) the same detection as the live path, in event-time
 * order: the logs are merged by time (a k-way merge), each put in order by a bounded reorder buffer, since the
 * detector's windows tolerate only a window of lateness. A log is a file, or a live file with its rotated backups,
 * read as one. Memory is bounded by the reorder buffers, not by the files' size; any line length; malformed records
 * counted and reported, never fatal.
 */
export async function replay(options: ReplayOptions): Promise<ReplaySummary> {
  const started = performance.now();
  const now = options.now ?? Date.now();
  const files = await resolveInputs(options.inputs);
  const summary: ReplaySummary = {
    files: files.length,
    bytes: files.reduce((n, f) => n + f.bytes, 0),
    eventsRead: 0,
    matched: 0,
    malformed: 0,
    skipped: 0,
    malformedSamples: [],
    futureEvents: 0,
    futureSamples: [],
    outOfOrder: 0,
    late: 0,
    duplicates: 0,
    peakBuffered: 0,
    timeOutliers: 0,
    outlierSamples: [],
    alerts: 0,
    alertsByRule: new Map(),
    alertsBySeverity: new Map(),
    principals: new Map(),
    seconds: 0,
  };
  const context: ReadContext = {
    defaultCluster: options.defaultCluster,
    accept: compileFilters(options.filters ?? {}, now),
    redact: options.redact !== false,
    counts: summary,
    malformed: (file, line, reason) => {
      summary.malformed++;
      if (summary.malformedSamples.length < MAX_SAMPLES) summary.malformedSamples.push({ file, line, reason });
    },
    onBytes: progressReporter(summary, options.onProgress),
  };
  const reorderBuffer = options.reorderBuffer ?? DEFAULT_REORDER_BUFFER;
  if (!Number.isSafeInteger(reorderBuffer) || reorderBuffer < 0)
    throw new RangeError(`reorderBuffer must be a whole number ≥ 0, not ${reorderBuffer}`);
  const outliers = {
    aheadMicros: (options.maxFutureSkewMs ?? DEFAULT_MAX_FUTURE_SKEW_MS) * 1000,
    found: (entry: Entry) => {
      summary.timeOutliers++;
      sampleTime(summary.outlierSamples, entry);
    },
  };
  const cursors = groupByLog(files).map((log, input) => new InputCursor(readLog(log, input, context), reorderBuffer, outliers));
  try {
    await mergeByTime(cursors, eventHandler(options, summary, now));
  } finally {
    for (const cursor of cursors) await cursor.close();
  }
  for (const { buffer } of cursors) {
    summary.outOfOrder += buffer.outOfOrder;
    summary.peakBuffered = Math.max(summary.peakBuffered, buffer.peak);
  }
  if (options.detector) await alertHandler(options, summary)(options.detector.flush());
  options.onProgress?.({ bytesRead: summary.bytes, bytesTotal: summary.bytes, events: summary.eventsRead, file: "" });
  summary.seconds = (performance.now() - started) / 1000;
  return summary;
}

/** Counts the bytes read and reports progress at most every PROGRESS_EVERY_MS. */
function progressReporter(summary: ReplaySummary, onProgress: ReplayOptions["onProgress"]): ReadContext["onBytes"] {
  let bytesRead = 0;
  let lastReport = 0;
  return (file, n) => {
    bytesRead += n;
    const t = performance.now();
    if (!onProgress || t - lastReport <= PROGRESS_EVERY_MS) return;
    lastReport = t;
    onProgress({ bytesRead, bytesTotal: summary.bytes, events: summary.eventsRead, file });
  };
}

/**
 * What happens to each event in merged order: counted, judged by the detector, handed to onEvent. Synchronous unless a
 * callback or alerts need awaiting: an async call per event would cost a promise per event.
 */
function eventHandler(options: ReplayOptions, summary: ReplaySummary, now: number): EmitEntry {
  const futureAfter = (now + (options.maxFutureSkewMs ?? DEFAULT_MAX_FUTURE_SKEW_MS)) * 1000;
  const emitAlerts = alertHandler(options, summary);
  let previous: Entry | undefined;
  let first: Entry | undefined;
  let last: Entry | undefined;
  // The requests seen at the current event time: an exact copy of one of them is a duplicate.
  let sameTime = new Set<string>();
  return (entry) => {
    if (previous && compareEntries(entry, previous) < 0) summary.late++;
    if (previous?.micros !== entry.micros) sameTime = new Set();
    previous = entry;
    const { event } = entry;
    const identity = `${event.cluster ?? ""}|${dedupKey(event)}`;
    if (sameTime.has(identity)) {
      summary.duplicates++;
      return undefined;
    }
    sameTime.add(identity);
    const user = event.user.username ?? "unknown";
    summary.principals.set(user, (summary.principals.get(user) ?? 0) + 1);
    // A clock far ahead must not stretch the time span; sorted by its time, it is replayed after everything else.
    if (entry.micros > futureAfter) noteFutureEvent(summary, entry);
    else {
      if (!first || entry.micros < first.micros) {
        first = entry;
        summary.firstEvent = eventTime(event);
      }
      if (!last || entry.micros > last.micros) {
        last = entry;
        summary.lastEvent = eventTime(event);
      }
    }
    const alerts = options.detector?.evaluate(event);
    if (!options.onEvent && !(alerts && alerts.length > 0)) return undefined;
    return (async () => {
      if (options.onEvent) await options.onEvent(event);
      if (alerts && alerts.length > 0) await emitAlerts(alerts);
    })();
  };
}

function noteFutureEvent(summary: ReplaySummary, entry: Entry): void {
  summary.futureEvents++;
  sampleTime(summary.futureSamples, entry);
}

/** Keeps the first few events with a clock gone wrong, as file:line and time. */
function sampleTime(samples: FutureEvent[], entry: Entry): void {
  if (samples.length < MAX_FUTURE_SAMPLES) samples.push({ file: entry.file, line: entry.line, time: eventTime(entry.event) });
}

function alertHandler(options: ReplayOptions, summary: ReplaySummary): (alerts: Alert[]) => Promise<void> {
  return async (alerts) => {
    if (alerts.length === 0) return;
    summary.alerts += alerts.length;
    for (const a of alerts) {
      const byRule = summary.alertsByRule.get(a.rule.id) ?? { name: a.rule.name, severity: a.event.severity, count: 0 };
      byRule.count++;
      summary.alertsByRule.set(a.rule.id, byRule);
      summary.alertsBySeverity.set(a.event.severity, (summary.alertsBySeverity.get(a.event.severity) ?? 0) + 1);
    }
    await options.onAlerts?.(alerts);
  };
}
