import { randomUUID } from "node:crypto";
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Alert, KafkaBus } from "@k8s-audit/core";
import { Detector } from "@k8s-audit/detector";
import { replay } from "@k8s-audit/replay";
import { loadDetection } from "@k8s-audit/rules";
import {
  alertDocCounts,
  apiserverLoad,
  auditEvent,
  clusterAdminBinding,
  countEvents,
  EventClock,
  type LoadReport,
  percentile,
  quietLogger,
  readWholeTopic,
  routineEvent,
} from "@k8s-audit/testkit";
import { freePort, StageProcess } from "../support/stages.js";

/** One deployment of the pipeline as separate processes on fresh topics, cluster, data stream and consumer groups. */
export interface PipelineOptions {
  brokers: string;
  esUrl: string;
  /** Per-event detector processes (`detect --only events`). */
  detectors?: number;
  ingestEnv?: Record<string, string>;
}

export class Pipeline {
  readonly id = randomUUID().slice(0, 8);
  readonly cluster = `faults-${this.id}`;
  readonly namespace = `faults_${this.id}`;
  readonly topics = {
    events: `faults-${this.id}.events`,
    alerts: `faults-${this.id}.alerts`,
    deadLetter: `faults-${this.id}.deadletter`,
    windows: `faults-${this.id}.events.windows`,
  };
  readonly dir: string;
  readonly spoolDir: string;
  ingest!: StageProcess;
  detectors: StageProcess[] = [];
  windows!: StageProcess;
  shipper!: StageProcess;
  url = "";
  port = 0;

  constructor(
    readonly name: string,
    readonly options: PipelineOptions,
  ) {
    this.dir = mkdtempSync(join(tmpdir(), `k8s-audit-faults-${name.replace(/[^a-z0-9]+/gi, "-")}-`));
    this.spoolDir = join(this.dir, "spool");
    mkdirSync(this.spoolDir);
  }

  env(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
    return {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      KAFKA_BROKERS: this.options.brokers,
      ELASTICSEARCH_URL: this.options.esUrl,
      K8S_AUDIT_TOPIC_EVENTS: this.topics.events,
      K8S_AUDIT_TOPIC_ALERTS: this.topics.alerts,
      K8S_AUDIT_TOPIC_DEADLETTER: this.topics.deadLetter,
      K8S_AUDIT_TOPIC_WINDOWS: this.topics.windows,
      K8S_AUDIT_ES_NAMESPACE: this.namespace,
      K8S_AUDIT_CONSUMER_GROUP_PREFIX: `faults-${this.id}`,
      K8S_AUDIT_SPOOL_DIR: this.spoolDir,
      K8S_AUDIT_LISTEN: `127.0.0.1:${this.port}`,
      K8S_AUDIT_CLUSTER: this.cluster,
      K8S_AUDIT_ALERTS_FILE: join(this.dir, "alerts.ndjson"),
      LOG_LEVEL: process.env.FAULTS_LOG_LEVEL ?? "info",
      ...extra,
    };
  }

  async start(): Promise<void> {
    this.port = await freePort();
    // Topics made up front: several processes creating the same topic at once would race.
    const bus = new KafkaBus({ brokers: this.options.brokers.split(","), clientId: "faults-setup", partitions: 3, logger: quietLogger });
    await bus.ensureTopics(Object.values(this.topics));
    await bus.close();
    this.ingest = new StageProcess("ingest", ["ingest"], this.env(this.options.ingestEnv), this.dir);
    this.detectors = Array.from(
      { length: this.options.detectors ?? 2 },
      (_, i) => new StageProcess(`detector-${i + 1}`, ["detect", "--only", "events"], this.env(), this.dir),
    );
    this.windows = new StageProcess("windows", ["detect", "--only", "windows"], this.env(), this.dir);
    this.shipper = new StageProcess("shipper", ["ship"], this.env(), this.dir);
    await Promise.all(this.all().map((s) => s.start()));
    this.url = `http://127.0.0.1:${this.port}/audit/${this.cluster}`;
  }

  all(): StageProcess[] {
    return [this.ingest, ...this.detectors, this.windows, this.shipper].filter(Boolean);
  }

  /** Stages that died on their own (not killed by the case): a poison record or an outage must not end a stage. */
  dead(): string[] {
    return this.all()
      .filter((s) => s.starts > 0 && s.pid === undefined)
      .map((s) => s.name);
  }

  async stop(): Promise<void> {
    await Promise.all(this.all().map((s) => s.stop()));
  }
}

/** Known attacks mixed into the load: their alerts are what must reach Elasticsearch exactly once. */
export function attackSchedule(clock: EventClock, tag: string, durationMs: number, count = 6) {
  const inject: { atMs: number; events: () => Record<string, unknown>[] }[] = [];
  for (let k = 0; k < count; k++) {
    const atMs = Math.round(((k + 0.5) / count) * durationMs * 0.8);
    if (k % 3 === 2) {
      // A burst of 25 unauthenticated requests from one address (a timed rule: the window stage raises it).
      inject.push({
        atMs,
        events: () =>
          Array.from({ length: 25 }, () => {
            const t = clock.next();
            return auditEvent({
              level: "Metadata",
              auditID: randomUUID(),
              user: {},
              userAgent: "curl/8.5.0",
              sourceIPs: [`203.0.113.${10 + k}`],
              responseStatus: { metadata: {}, code: 401 },
              annotations: {},
              requestReceivedTimestamp: t.received,
              stageTimestamp: t.stage,
            });
          }),
      });
    } else {
      // `kubectl create clusterrolebinding` to cluster-admin by a distinct intruder (per-event rules).
      inject.push({
        atMs,
        events: () => {
          const t = clock.next();
          return [
            clusterAdminBinding(`${tag}-backdoor-${k}`, `mallory-${k}`, {
              auditID: randomUUID(),
              user: { username: `intruder-${k}@example.com`, groups: ["system:authenticated"] },
              sourceIPs: [`198.51.100.${20 + k}`],
              requestReceivedTimestamp: t.received,
              stageTimestamp: t.stage,
            }),
          ];
        },
      });
    }
  }
  return inject;
}

const pack = loadDetection();

/** The alert ids detection gives for these events offline (replay): the ones the live pipeline must deliver. */
export async function expectedAlertIds(events: Record<string, unknown>[], cluster: string, dir: string): Promise<Set<string>> {
  const file = join(dir, `attacks-${randomUUID().slice(0, 6)}.ndjson`);
  const sorted = [...events].sort((a, b) => String(a.stageTimestamp).localeCompare(String(b.stageTimestamp)));
  writeFileSync(file, `${sorted.map((e) => JSON.stringify({ ...e, cluster })).join("\n")}\n`);
  const alerts: Alert[] = [];
  await replay({
    inputs: [file],
    defaultCluster: cluster,
    detector: new Detector(pack.rules, { windowRules: pack.windowRules }),
    onAlerts: (a) => {
      alerts.push(...a);
    },
  });
  return new Set(alerts.map((a) => a.event.id));
}

export interface Row {
  fault: string;
  sent: number;
  acknowledged: number;
  stored: number;
  lost: number;
  duplicatedEvents: number;
  expectedAlerts: number;
  missingAlerts: number;
  duplicatedAlerts: number;
  /** Alert ids in Elasticsearch that no attack explains (e.g. a redelivered alert folded as a second one). */
  unexpectedAlerts: number;
  /** Extra copies of alerts on the alerts topic (harmless: the shipper's create-by-id absorbs them); information only. */
  alertTopicCopies: number;
  seconds: number;
  notes: string;
}

export async function sleep(ms: number): Promise<void> {
  await new Promise((r) => setTimeout(r, ms));
}

/** Runs the load for `durationMs` with the fault fired at `faultAtMs`, then counts. */
export async function runLoadWithFault(
  p: Pipeline,
  options: {
    durationMs: number;
    eventsPerSecond?: number;
    batchSize?: number;
    concurrency?: number;
    faultAtMs: number;
    fault: () => Promise<void>;
    headers?: Record<string, string>;
  },
): Promise<LoadReport> {
  const clock = new EventClock();
  const load = apiserverLoad({
    url: p.url,
    eventsPerSecond: options.eventsPerSecond ?? 2000,
    batchSize: options.batchSize ?? 200,
    concurrency: options.concurrency ?? 6,
    durationMs: options.durationMs,
    makeEvent: (i) => routineEvent(clock, i),
    inject: attackSchedule(clock, p.id, options.durationMs),
    tail: () => {
      clock.skip(5 * 60_000);
      return Array.from({ length: 300 }, (_, i) => routineEvent(clock, i));
    },
    retry: { initialMs: 100, maxMs: 2000, giveUpMs: 180_000 },
    ...(options.headers ? { headers: options.headers } : {}),
  });
  await sleep(options.faultAtMs);
  await options.fault();
  return load.done;
}

/** Counts a finished case: events on the topic against what was acknowledged, alerts in Elasticsearch against replay. */
export async function count(p: Pipeline, fault: string, report: LoadReport, started: number, notes: string[] = []): Promise<Row> {
  const { brokers, esUrl } = p.options;
  // Events: read the topic to its end until every acknowledged event is there (spools drain) or 90 s pass.
  let counts = new Map<string, number>();
  const deadline = Date.now() + 90_000;
  for (;;) {
    counts = countEvents(await readWholeTopic(brokers, p.topics.events));
    const missing = [...report.acknowledged].filter((id) => !counts.has(`${id}|ResponseComplete`)).length;
    if (missing === 0 || Date.now() > deadline) break;
    await sleep(2000);
  }
  const acknowledged = [...report.acknowledged];
  const stored = acknowledged.filter((id) => counts.has(`${id}|ResponseComplete`)).length;
  let duplicatedEvents = 0;
  for (const n of counts.values()) if (n > 1) duplicatedEvents += n - 1;

  // Alerts: the ids replay gives for the acknowledged attacks, each to be in the data stream exactly once.
  const expected = await expectedAlertIds(report.injectedAcknowledged, p.cluster, p.dir);
  let docs = new Map<string, number>();
  const alertDeadline = Date.now() + 120_000;
  for (;;) {
    docs = await alertDocCounts(esUrl, p.namespace);
    if ([...expected].every((id) => docs.has(id)) || Date.now() > alertDeadline) break;
    await sleep(2000);
  }
  // A late copy would show up within a few seconds of the last.
  await sleep(3000);
  docs = await alertDocCounts(esUrl, p.namespace);
  const missingAlerts = [...expected].filter((id) => !docs.has(id));
  const duplicatedAlerts = [...expected].filter((id) => (docs.get(id) ?? 0) > 1).length;
  const unexpected = [...docs.keys()].filter((id) => !expected.has(id));
  const alertRecords = await readWholeTopic(brokers, p.topics.alerts);
  const byId = new Map<string, number>();
  for (const r of alertRecords) {
    try {
      const id = (JSON.parse(r.value) as Alert).event?.id;
      if (id) byId.set(id, (byId.get(id) ?? 0) + 1);
    } catch {
      // poison records are counted by their case
    }
  }
  let alertTopicCopies = 0;
  for (const n of byId.values()) if (n > 1) alertTopicCopies += n - 1;
  if (missingAlerts.length) notes.push(`missing alerts: ${missingAlerts.slice(0, 3).join(", ")}`);
  if (report.givenUp.length) notes.push(`${report.givenUp.length} events given up by the client`);
  const refusals = Object.entries(report.refusals)
    .map(([k, v]) => `${k}×${v}`)
    .join(" ");
  if (refusals) notes.push(`client saw ${refusals}`);
  notes.push(`p99 ${percentile(report.latencies, 99)} ms`);
  return {
    fault,
    sent: report.sent.length,
    acknowledged: acknowledged.length,
    stored,
    lost: acknowledged.length - stored,
    duplicatedEvents,
    expectedAlerts: expected.size,
    missingAlerts: missingAlerts.length,
    duplicatedAlerts,
    unexpectedAlerts: unexpected.length,
    alertTopicCopies,
    seconds: Math.round((Date.now() - started) / 1000),
    notes: notes.join("; "),
  };
}

export function formatTable(rows: Row[]): string {
  const header = [
    "fault",
    "events sent",
    "acknowledged",
    "stored",
    "lost",
    "duplicated events",
    "expected alerts",
    "missing alerts",
    "duplicated alerts",
    "unexpected alerts",
    "alert-topic copies (info)",
    "s",
    "notes",
  ];
  const lines = rows.map((r) => [
    r.fault,
    r.sent,
    r.acknowledged,
    r.stored,
    r.lost,
    r.duplicatedEvents,
    r.expectedAlerts,
    r.missingAlerts,
    r.duplicatedAlerts,
    r.unexpectedAlerts,
    r.alertTopicCopies,
    r.seconds,
    r.notes,
  ]);
  return [
    `| ${header.join(" | ")} |`,
    `|${header.map(() => "---").join("|")}|`,
    ...lines.map((l) => `| ${l.map((c) => String(c).replaceAll("|", "/")).join(" | ")} |`),
  ].join("\n");
}
