/**
 * pnpm bench:shipper — the shipper stage from the real Kafka into the real Elasticsearch, against a bare
 * `client.helpers.bulk` of the same documents in the same run. Prints docs/s for both and last
 * `shipper_ratio=<shipper / bare>`.
 */
import { randomUUID } from "node:crypto";
import { type Alert, AuditEventSchema, createLogger, KafkaBus, syntheticAuditEvent } from "@k8s-audit/core";
import { Detector } from "@k8s-audit/detector";
import { ELASTICSEARCH_URL, ensureEngines } from "@k8s-audit/engines";
import { loadRules } from "@k8s-audit/rules";
import { ALERTS_DATASET, alertsDataStream, createElasticsearchClient, ensureAlertTemplate, startShipperService } from "../src/index.js";

const DOCS = Number(process.env.BENCH_DOCS ?? 50_000);
const logger = createLogger({ level: "warn" });

/** Realistic alerts: the detector's own output for synthetic events, made distinct per document. */
function makeAlerts(): Alert[] {
  const detector = new Detector(loadRules(), { stormWindowMs: 0 });
  const templates: Alert[] = [];
  for (let i = 0; templates.length < 50; i++)
    templates.push(...detector.evaluate(AuditEventSchema.parse({ ...syntheticAuditEvent(i * 250 + 250), cluster: "bench" })));
  return Array.from({ length: DOCS }, (_, i) => {
    const t = templates[i % templates.length] as Alert;
    return {
      ...t,
      event: { ...t.event, id: `bench-${i}-${t.event.id}` },
      kubernetes: { audit: { ...t.kubernetes.audit, auditID: [`bench-${i}`] } },
    };
  });
}

async function indexed(es: ReturnType<typeof createElasticsearchClient>, index: string): Promise<number> {
  try {
    const stats = await es.indices.stats({ index, metric: "indexing" });
    return stats._all.primaries?.indexing?.index_total ?? 0;
  } catch {
    return 0; // not created yet
  }
}

/**
 * Steady-state rate: from the first documents indexed to the last, read from indexing stats (a refresh per poll would
 * slow the very indexing we time). The consumer group's start-up (join, first fetch) is reported apart.
 */
async function steadyRate(
  es: ReturnType<typeof createElasticsearchClient>,
  index: string,
  n: number,
): Promise<{ rate: number; startupSeconds: number }> {
  const t0 = performance.now();
  let first = 0;
  let firstAt = 0;
  for (;;) {
    const count = await indexed(es, index);
    if (count > 0 && firstAt === 0) {
      first = count;
      firstAt = performance.now();
    }
    if (count >= n) return { rate: (n - first) / ((performance.now() - firstAt) / 1000), startupSeconds: (firstAt - t0) / 1000 };
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function main() {
  const engines =
    process.env.KAFKA_BROKERS && process.env.ELASTICSEARCH_URL
      ? { kafkaBrokers: process.env.KAFKA_BROKERS, elasticsearchUrl: process.env.ELASTICSEARCH_URL }
      : await ensureEngines();
  const es = createElasticsearchClient(engines.elasticsearchUrl ?? ELASTICSEARCH_URL);
  await ensureAlertTemplate(es);
  const alerts = makeAlerts();
  const id = randomUUID().slice(0, 8);
  console.log(`shipper bench: ${DOCS} alerts, Kafka ${engines.kafkaBrokers}, Elasticsearch ${engines.elasticsearchUrl}`);

  // Baseline: the same documents through the client's bulk helper, straight from memory.
  const bareIndex = alertsDataStream(`bench_bare_${id}`);
  const ingested = new Date().toISOString();
  const docs = alerts.map((a) => ({
    ...a,
    event: { ...a.event, ingested },
    data_stream: { type: "logs", dataset: ALERTS_DATASET, namespace: `bench_bare_${id}` },
  }));
  const t0 = performance.now();
  const result = await es.helpers.bulk({
    datasource: docs,
    onDocument: (d) => ({ create: { _index: bareIndex, _id: d.event.id } }),
    flushBytes: 5 * 1024 * 1024,
  });
  const bareSeconds = (performance.now() - t0) / 1000;
  if (result.failed > 0) throw new Error(`bare bulk: ${result.failed} documents failed`);

  // The shipper: Kafka → validate → bulk create → commit.
  const bus = new KafkaBus({ brokers: engines.kafkaBrokers.split(","), clientId: "bench-shipper", logger });
  const topics = { events: `bench-ship-${id}.events`, alerts: `bench-ship-${id}.alerts`, deadLetter: `bench-ship-${id}.dlq` };
  await bus.ensureTopics(Object.values(topics));
  for (let i = 0; i < alerts.length; i += 2000) {
    await bus.publish(
      topics.alerts,
      alerts.slice(i, i + 2000).map((a) => ({ key: a.event.id, value: JSON.stringify(a) })),
    );
  }
  const namespace = `bench_ship_${id}`;
  const shipper = await startShipperService({ bus, topics, es, logger, namespace, groupId: `bench-${id}` });
  const ship = await steadyRate(es, alertsDataStream(namespace), DOCS);
  await shipper.stop();
  await bus.close();
  await es.close();

  const bareRate = DOCS / bareSeconds;
  const shipRate = ship.rate;
  console.log(`bare helpers.bulk: ${Math.round(bareRate)} docs/s`);
  console.log(
    `shipper (Kafka → Elasticsearch): ${Math.round(shipRate)} docs/s steady (consumer start-up ${ship.startupSeconds.toFixed(1)} s before the first documents)`,
  );
  console.log(`shipper_ratio=${(shipRate / bareRate).toFixed(2)}`);
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
