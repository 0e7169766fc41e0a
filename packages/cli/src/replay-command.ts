import { createWriteStream } from "node:fs";
import { type Alert, type AuditEvent, type Config, createBus, type Logger } from "@k8s-audit/core";
import { Detector, detectionDirs, detectorOptions } from "@k8s-audit/detector";
import { KafkaSink, type ReplayFilters, type ReplaySummary, replay, WebhookSink } from "@k8s-audit/replay";
import { loadDetection } from "@k8s-audit/rules";
import {
  alertsDataStream,
  type BulkDocument,
  bulkCreate,
  createElasticsearchClient,
  ensureAlertTemplate,
  ensureRawEventTemplate,
  eventsDataStream,
  rawEventDocument,
} from "@k8s-audit/shipper";
import { SingleBar } from "cli-progress";
import { formatDuration } from "date-fns";
import { secondsInDay, secondsInHour, secondsInMinute } from "date-fns/constants";
import { formatAlertLine } from "./alert-output.js";

export interface ReplayFlags extends ReplayFilters {
  toKafka?: boolean | string;
  toWebhook?: string;
  token?: string;
  case?: string;
  includeEvents?: boolean;
  out?: string;
  progress?: boolean;
  /** Events held per log to put it in time order (replay's reorderBuffer). */
  reorderBuffer?: number;
}

const SEVERITY_NAMES: Record<number, string> = { 21: "low", 47: "medium", 73: "high", 99: "critical" };

/** A case id as a data stream namespace: lowercase letters, digits and underscores. */
export function caseNamespace(id: string): string {
  const ns = `case_${id
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, "_")
    .replace(/^_+|_+$/g, "")}`;
  if (ns === "case_") throw new Error(`--case ${JSON.stringify(id)} has no letters or digits`);
  return ns;
}

/** Buffers documents and bulk-creates them in batches (deterministic ids: a replay run twice stores nothing twice). */
class BulkWriter {
  private docs: BulkDocument[] = [];
  stored = 0;
  constructor(private readonly es: ReturnType<typeof createElasticsearchClient>) {}
  async add(doc: BulkDocument): Promise<void> {
    this.docs.push(doc);
    if (this.docs.length >= 1000) await this.flush();
  }
  async flush(): Promise<void> {
    if (this.docs.length === 0) return;
    const docs = this.docs;
    this.docs = [];
    const outcome = await bulkCreate(this.es, docs);
    if (outcome.rejected.length > 0)
      throw new Error(`Elasticsearch refused ${outcome.rejected.length} documents: ${outcome.rejected[0]?.reason}`);
    this.stored += outcome.stored;
  }
}

export async function runReplay(inputs: string[], flags: ReplayFlags, config: Config, logger: Logger): Promise<number> {
  const forwarding = Boolean(flags.toKafka || flags.toWebhook);
  const stdout = process.stdout;
  const stderr = process.stderr;
  const closers: (() => Promise<void>)[] = [];
  const eventHandlers: ((e: AuditEvent) => Promise<void>)[] = [];
  const alertHandlers: ((a: Alert[]) => Promise<void> | void)[] = [];

  let detector: Detector | undefined;
  if (!forwarding) {
    const pack = loadDetection(detectionDirs(config));
    detector = new Detector(pack.rules, detectorOptions(config, pack, true));
  }

  if (flags.toKafka) {
    if (!config.KAFKA_BROKERS) throw new Error("--to-kafka needs KAFKA_BROKERS");
    const topic = typeof flags.toKafka === "string" ? flags.toKafka : "k8s-audit.replay";
    const bus = createBus(config, logger);
    await bus.ensureTopics([topic]);
    const sink = new KafkaSink(bus, topic);
    eventHandlers.push((e) => sink.add(e));
    closers.push(async () => {
      await sink.flush();
      await bus.close();
      stderr.write(`replay: ${sink.sent} events published to Kafka topic ${topic}\n`);
    });
  }
  if (flags.toWebhook) {
    const sink = new WebhookSink(flags.toWebhook, { token: flags.token });
    eventHandlers.push((e) => sink.add(e));
    closers.push(async () => {
      await sink.flush();
      stderr.write(`replay: ${sink.sent} events posted to ${flags.toWebhook}\n`);
    });
  }
  if (flags.case) {
    if (!config.ELASTICSEARCH_URL) throw new Error("--case needs ELASTICSEARCH_URL");
    const namespace = caseNamespace(flags.case);
    const es = createElasticsearchClient(config.ELASTICSEARCH_URL, config.ELASTICSEARCH_API_KEY);
    await ensureAlertTemplate(es);
    const alerts = new BulkWriter(es);
    const alertIndex = alertsDataStream(namespace);
    alertHandlers.push(async (batch) => {
      const ingested = new Date().toISOString();
      for (const a of batch) {
        await alerts.add({
          id: a.event.id,
          index: alertIndex,
          document: {
            ...a,
            event: { ...a.event, ingested },
            labels: { ...a.labels, case: flags.case as string },
            data_stream: { type: "logs", dataset: "k8s_audit.alert", namespace },
          },
        });
      }
    });
    let events: BulkWriter | undefined;
    if (flags.includeEvents) {
      await ensureRawEventTemplate(es);
      events = new BulkWriter(es);
      const eventIndex = eventsDataStream(namespace);
      eventHandlers.push(async (e) => {
        const { id, document } = rawEventDocument(e, new Date().toISOString());
        await events?.add({
          id,
          index: eventIndex,
          document: { ...document, data_stream: { type: "logs", dataset: "k8s_audit.events", namespace } },
        });
      });
    }
    closers.push(async () => {
      await alerts.flush();
      await events?.flush();
      await es.close();
      stderr.write(
        `replay: case ${flags.case}: ${alerts.stored} alerts in ${alertIndex}${events ? `, ${events.stored} events in ${eventsDataStream(namespace)}` : ""}\n`,
      );
    });
  }
  if (flags.out) {
    const file = createWriteStream(flags.out);
    alertHandlers.push((batch) => {
      for (const a of batch) file.write(`${JSON.stringify(a)}\n`);
    });
    closers.push(() => new Promise<void>((resolve, reject) => file.end((err?: Error | null) => (err ? reject(err) : resolve()))));
  }
  if (!forwarding && !flags.out && !flags.case) {
    alertHandlers.push((batch) => {
      stdout.write(`${batch.map((a) => (stdout.isTTY ? formatAlertLine(a, true) : JSON.stringify(a))).join("\n")}\n`);
    });
  }

  const bar =
    flags.progress !== false && stderr.isTTY
      ? new SingleBar({
          format: "replay {bar} {percentage}% | {mb}/{totalMb} MB | {events} events | ETA {eta_formatted}",
          hideCursor: true,
          clearOnComplete: true,
          stream: stderr,
        })
      : undefined;
  let barStarted = false;
  const summary = await replay({
    inputs,
    filters: {
      from: flags.from,
      to: flags.to,
      user: flags.user,
      namespace: flags.namespace,
      cluster: flags.cluster,
      verb: flags.verb,
      resource: flags.resource,
    },
    // Archives seldom name their cluster: without --cluster they are the default cluster, as the live ingest stamps it.
    defaultCluster: flags.cluster?.split(",")[0] ?? config.K8S_AUDIT_CLUSTER,
    ...(flags.reorderBuffer === undefined ? {} : { reorderBuffer: flags.reorderBuffer }),
    maxFutureSkewMs: config.K8S_AUDIT_MAX_CLOCK_SKEW_SECONDS * 1000,
    detector,
    onEvent: eventHandlers.length
      ? async (e) => {
          for (const h of eventHandlers) await h(e);
        }
      : undefined,
    onAlerts: async (alerts) => {
      for (const h of alertHandlers) await h(alerts);
    },
    onProgress: bar
      ? (p) => {
          const mb = (n: number) => (n / 1048576).toFixed(1);
          if (!barStarted) {
            bar.start(Math.max(1, p.bytesTotal), 0, { mb: "0", totalMb: mb(p.bytesTotal), events: 0 });
            barStarted = true;
          }
          bar.update(p.bytesRead, { mb: mb(p.bytesRead), totalMb: mb(p.bytesTotal), events: p.events });
        }
      : undefined,
  });
  bar?.stop();
  for (const close of closers) await close();
  stderr.write(formatSummary(summary, Boolean(detector)));
  return 0;
}

/**
 * A length of time in words, to the second, in days of 24 hours and smaller units ("2 hours 29 minutes 59 seconds",
 * "40 days 6 hours"): calendar months would depend on the reader's time zone, and the times printed are UTC.
 */
function inWords(ms: number): string {
  const total = Math.floor(Math.max(0, ms) / 1000);
  const duration = {
    days: Math.floor(total / secondsInDay),
    hours: Math.floor((total % secondsInDay) / secondsInHour),
    minutes: Math.floor((total % secondsInHour) / secondsInMinute),
    seconds: total % secondsInMinute,
  };
  return formatDuration(duration) || "0 seconds";
}

/** How long a run took: to a tenth of a second under a minute, else in words. */
function formatElapsed(seconds: number): string {
  return seconds < 60 ? `${seconds.toFixed(1)} s` : inWords(seconds * 1000);
}

export function formatSummary(s: ReplaySummary, detected: boolean): string {
  const out: string[] = [];
  const rate = s.seconds > 0 ? Math.round(s.eventsRead / s.seconds) : 0;
  out.push("");
  out.push(
    `files ${s.files}  bytes ${s.bytes}  events read ${s.eventsRead}  matched ${s.matched}  malformed ${s.malformed}${s.skipped ? `  skipped (not Kubernetes) ${s.skipped}` : ""}  (${formatElapsed(s.seconds)}, ${rate} events/s)`,
  );
  if (s.firstEvent && s.lastEvent)
    out.push(`time span ${s.firstEvent} → ${s.lastEvent} (${inWords(Date.parse(s.lastEvent) - Date.parse(s.firstEvent))})`);
  for (const m of s.malformedSamples.slice(0, 10)) out.push(`malformed ${m.file}:${m.line}: ${m.reason}`);
  if (s.malformed > 10) out.push(`… and ${s.malformed - 10} more malformed records`);
  if (s.futureEvents > 0) {
    out.push(`future-dated ${s.futureEvents} events (a clock ahead; replayed last, not counted in windows, not in the time span)`);
    for (const f of s.futureSamples.slice(0, 5)) out.push(`future ${f.file}:${f.line}: ${f.time}`);
  }
  if (s.timeOutliers > 0) {
    out.push(`time outliers ${s.timeOutliers} events far ahead of both their neighbours (a clock gone wrong; replayed in time order)`);
    for (const o of s.outlierSamples.slice(0, 5)) out.push(`outlier ${o.file}:${o.line}: ${o.time}`);
  }
  if (s.duplicates > 0) out.push(`duplicates ${s.duplicates} events seen twice (overlapping inputs), replayed once`);
  if (s.late > 0)
    out.push(`late ${s.late} events came after later ones: a log is more out of order than --reorder-buffer holds; timed rules may differ`);
  if (detected) {
    out.push("");
    out.push(
      `alerts ${s.alerts}  ${[...s.alertsBySeverity]
        .sort((a, b) => b[0] - a[0])
        .map(([sev, n]) => `${SEVERITY_NAMES[sev] ?? sev} ${n}`)
        .join("  ")}`,
    );
    const rows = [...s.alertsByRule].sort((a, b) => b[1].count - a[1].count);
    if (rows.length) {
      const w = Math.max(4, ...rows.map(([id]) => id.length));
      out.push(`${"RULE".padEnd(w)}  SEVERITY  COUNT  NAME`);
      for (const [id, r] of rows)
        out.push(
          `${id.padEnd(w)}  ${(SEVERITY_NAMES[r.severity] ?? String(r.severity)).padEnd(8)}  ${String(r.count).padStart(5)}  ${r.name}`,
        );
    }
  }
  const principals = [...s.principals].sort((a, b) => b[1] - a[1]).slice(0, 5);
  if (principals.length) {
    out.push("");
    out.push("top principals");
    for (const [user, n] of principals) out.push(`  ${String(n).padStart(8)}  ${user}`);
  }
  return `${out.join("\n")}\n`;
}
