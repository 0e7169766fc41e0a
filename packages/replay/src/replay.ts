import { readFileSync } from "node:fs";
import { gunzipSync } from "node:zlib";
import { type Alert, type AuditEvent, eventTime, looksLikeAuditEvent, whyNotAnAuditEvent } from "@k8s-audit/core";
import type { Detector } from "@k8s-audit/detector";
import { lineBatches, openInput, resolveInputs } from "./files.js";
import { compileFilters, type ReplayFilters } from "./filters.js";
import { type Decoded, decodeRecord } from "./formats.js";

export interface ReplayProgress {
  bytesRead: number;
  bytesTotal: number;
  events: number;
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
}

export interface MalformedRecord {
  file: string;
  line: number;
  reason: string;
}

export interface ReplaySummary {
  files: number;
  bytes: number;
  eventsRead: number;
  matched: number;
  malformed: number;
  /** The first malformed records, with file:line and reason. */
  malformedSamples: MalformedRecord[];
  alerts: number;
  alertsByRule: Map<string, { name: string; severity: number; count: number }>;
  alertsBySeverity: Map<number, number>;
  principals: Map<string, number>;
  firstEvent?: string;
  lastEvent?: string;
  seconds: number;
}

const MAX_SAMPLES = 50;

/**
 * Streams archived audit logs through the filters and (optionally) the same detection as the live path: constant
 * memory, any line length, malformed records counted and reported, never fatal.
 */
export async function replay(options: ReplayOptions): Promise<ReplaySummary> {
  const started = performance.now();
  const files = await resolveInputs(options.inputs);
  const accept = compileFilters(options.filters ?? {});
  const summary: ReplaySummary = {
    files: files.length,
    bytes: files.reduce((n, f) => n + f.bytes, 0),
    eventsRead: 0,
    matched: 0,
    malformed: 0,
    malformedSamples: [],
    alerts: 0,
    alertsByRule: new Map(),
    alertsBySeverity: new Map(),
    principals: new Map(),
    seconds: 0,
  };
  let bytesRead = 0;
  let lastProgress = 0;

  const malformed = (file: string, line: number, reason: string) => {
    summary.malformed++;
    if (summary.malformedSamples.length < MAX_SAMPLES) summary.malformedSamples.push({ file, line, reason });
  };

  const emitAlerts = async (alerts: Alert[]) => {
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

  // Synchronous unless a callback or alerts need awaiting: an async call per line would cost a promise per event.
  const handle = (decoded: Decoded[], file: string, line: number): Promise<void> | undefined => {
    let pending: Promise<void> | undefined;
    for (const [index, { event }] of decoded.entries()) {
      if (pending) return pending.then(() => handle(decoded.slice(index), file, line));
      summary.eventsRead++;
      if (!looksLikeAuditEvent(event)) {
        malformed(file, line, `not an audit event: ${whyNotAnAuditEvent(event)}`);
        continue;
      }
      if (event.cluster === undefined && options.defaultCluster) event.cluster = options.defaultCluster;
      if (!accept(event)) continue;
      summary.matched++;
      const user = event.user.username ?? "unknown";
      summary.principals.set(user, (summary.principals.get(user) ?? 0) + 1);
      const t = eventTime(event);
      if (!summary.firstEvent || t < summary.firstEvent) summary.firstEvent = t;
      if (!summary.lastEvent || t > summary.lastEvent) summary.lastEvent = t;
      const alerts = options.detector?.evaluate(event);
      if (options.onEvent || (alerts && alerts.length > 0)) {
        pending = (async () => {
          if (options.onEvent) await options.onEvent(event);
          if (alerts && alerts.length > 0) await emitAlerts(alerts);
        })();
      }
    }
    return pending;
  };

  for (const file of files) {
    let lineNo = 0;
    let wholeFile = false;
    const stream = openInput(file.path, (n) => {
      bytesRead += n;
      const now = performance.now();
      if (options.onProgress && now - lastProgress > 100) {
        lastProgress = now;
        options.onProgress({ bytesRead, bytesTotal: summary.bytes, events: summary.eventsRead, file: file.path });
      }
    });
    reading: for await (const batch of lineBatches(stream)) {
      for (const text of batch) {
        lineNo++;
        if (text.length === 0 || /^\s*$/.test(text)) continue;
        let value: unknown;
        try {
          value = JSON.parse(text);
        } catch (err) {
          // A pretty-printed EventList or Event file is one JSON document over many lines: read it whole instead.
          if (lineNo === 1 && /^\s*[[{]\s*$/.test(text)) {
            wholeFile = true;
            break reading;
          }
          malformed(file.path, lineNo, `malformed JSON: ${(err as Error).message}`);
          continue;
        }
        let decoded: Decoded[];
        try {
          decoded = decodeRecord(value);
        } catch (err) {
          malformed(file.path, lineNo, `malformed envelope: ${(err as Error).message}`);
          continue;
        }
        const pending = handle(decoded, file.path, lineNo);
        if (pending) await pending;
      }
    }
    if (wholeFile) {
      stream.destroy();
      const raw = readFileSync(file.path);
      const text = (raw[0] === 0x1f && raw[1] === 0x8b ? gunzipSync(raw) : raw).toString("utf8");
      try {
        await handle(decodeRecord(JSON.parse(text)), file.path, 1);
      } catch (err) {
        malformed(file.path, 1, `malformed JSON document: ${(err as Error).message}`);
      }
    }
  }
  if (options.detector) await emitAlerts(options.detector.flush());
  options.onProgress?.({ bytesRead: summary.bytes, bytesTotal: summary.bytes, events: summary.eventsRead, file: "" });
  summary.seconds = (performance.now() - started) / 1000;
  return summary;
}
