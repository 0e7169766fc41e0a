/**
 * pnpm bench:ingest — the ingest over HTTPS with keep-alive into the real Kafka, against a bare producer sending the
 * same events in the same run. The ingest runs as its own process (one core), as in production; the load client and the
 * baseline producer run here. Prints events/s, p50/p99 response time, and last `ingest_ratio=<ingest / bare>`.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { syntheticAuditEvent as benchEvent, createLogger, KafkaBus } from "@k8s-audit/core";
import { KAFKA_BROKERS, startKafka } from "@k8s-audit/engines";
import { createCertificateAuthority, issueCertificate } from "@k8s-audit/ingest";
import { Pool } from "undici";

const BATCH = 400;
const BATCHES = Number(process.env.BENCH_BATCHES ?? 500);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 8);
const CLI = new URL("../../cli/bin/k8s-audit.mjs", import.meta.url).pathname;
const logger = createLogger({ level: "warn" });

function makeBatches(): Record<string, unknown>[][] {
  return Array.from({ length: BATCHES }, (_, b) => Array.from({ length: BATCH }, (_, i) => benchEvent(b * BATCH + i)));
}

async function runConcurrently(n: number, task: (i: number) => Promise<void>): Promise<number> {
  let next = 0;
  const start = process.hrtime.bigint();
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next < n) await task(next++);
    }),
  );
  return Number(process.hrtime.bigint() - start) / 1e9;
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? Number.NaN;
}

async function bare(brokers: string, batches: Record<string, unknown>[][]): Promise<number> {
  const bus = new KafkaBus({ brokers: brokers.split(","), clientId: "bench-bare", logger });
  const topic = `bench-bare-${Date.now()}`;
  await bus.ensureTopics([topic]);
  await bus.publish(topic, [{ value: "warm-up" }]);
  const seconds = await runConcurrently(batches.length, async (i) => {
    const batch = batches[i] as Record<string, unknown>[];
    // What a minimal forwarder does: parse the POSTed body, serialise each event, produce with the same key.
    const items = (JSON.parse(JSON.stringify({ kind: "EventList", items: batch })) as { items: { auditID: string }[] }).items;
    await bus.publish(
      topic,
      items.map((e) => ({ key: `bench/${e.auditID}`, value: JSON.stringify(e) })),
    );
  });
  await bus.close();
  return seconds;
}

async function startIngest(brokers: string): Promise<{ url: string; ca: string; child: ChildProcess }> {
  const dir = mkdtempSync(join(tmpdir(), "bench-ingest-"));
  const ca = createCertificateAuthority();
  const server = issueCertificate(ca, { commonName: "localhost", altNames: ["127.0.0.1", "localhost"], usage: "server" });
  writeFileSync(join(dir, "tls.crt"), server.cert);
  writeFileSync(join(dir, "tls.key"), server.key);
  const id = Date.now();
  const child = spawn(process.execPath, [CLI, "ingest", "--listen", "127.0.0.1:0", "--cluster", "bench"], {
    env: {
      ...process.env,
      KAFKA_BROKERS: brokers,
      K8S_AUDIT_TLS_CERT: join(dir, "tls.crt"),
      K8S_AUDIT_TLS_KEY: join(dir, "tls.key"),
      K8S_AUDIT_TOPIC_EVENTS: `bench-ingest-${id}.events`,
      K8S_AUDIT_TOPIC_ALERTS: `bench-ingest-${id}.alerts`,
      K8S_AUDIT_TOPIC_DEADLETTER: `bench-ingest-${id}.deadletter`,
      K8S_AUDIT_SPOOL_DIR: join(dir, "spool"),
      LOG_LEVEL: "warn",
    },
    stdio: ["ignore", "inherit", "pipe"],
  });
  let stderr = "";
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`ingest did not start: ${stderr}`)), 30_000);
    child.stderr?.on("data", (d) => {
      stderr += d;
      const m = /webhook listening on (https:\/\/\S+\/audit)/.exec(stderr);
      if (m?.[1]) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    });
  });
  return { url, ca: ca.cert, child };
}

async function viaIngest(brokers: string, batches: Record<string, unknown>[][]): Promise<{ seconds: number; latencies: number[] }> {
  const { url, ca, child } = await startIngest(brokers);
  try {
    return await measure(url, ca, batches);
  } finally {
    child.kill("SIGTERM");
    await new Promise((r) => child.once("exit", r));
  }
}

async function measure(url: string, ca: string, batches: Record<string, unknown>[][]): Promise<{ seconds: number; latencies: number[] }> {
  const origin = new URL(url).origin;
  const pool = new Pool(origin, { connections: CONCURRENCY, connect: { ca } });
  const bodies = batches.map((items) => JSON.stringify({ kind: "EventList", apiVersion: "audit.k8s.io/v1", metadata: {}, items }));
  const post = async (body: string) => {
    const res = await pool.request({ path: "/audit", method: "POST", body, headers: { "content-type": "application/json" } });
    const text = await res.body.text();
    if (res.statusCode !== 200) throw new Error(`ingest answered ${res.statusCode}: ${text}`);
  };
  await post(JSON.stringify({ kind: "EventList", items: [benchEvent(BATCH * BATCHES)] })); // warm-up: connections and producer
  const latencies: number[] = [];
  const seconds = await runConcurrently(bodies.length, async (i) => {
    const t0 = performance.now();
    await post(bodies[i] as string);
    latencies.push(performance.now() - t0);
  });
  await pool.close();
  return { seconds, latencies: latencies.sort((a, b) => a - b) };
}

async function main() {
  let brokers = process.env.KAFKA_BROKERS;
  if (!brokers) {
    await startKafka((m) => console.error(`[engines] ${m}`));
    brokers = KAFKA_BROKERS;
  }
  const batches = makeBatches();
  const events = BATCH * BATCHES;
  const bytes = JSON.stringify(batches[0]).length / BATCH;
  console.log(
    `ingest bench: ${events} events (${Math.round(bytes)} B each) in ${BATCHES} EventLists of ${BATCH}, ${CONCURRENCY} in flight, Kafka ${brokers}`,
  );
  const bareSeconds = await bare(brokers, batches);
  const ingest = await viaIngest(brokers, batches);
  const bareRate = events / bareSeconds;
  const ingestRate = events / ingest.seconds;
  console.log(`bare kafka producer: ${Math.round(bareRate)} events/s`);
  console.log(
    `ingest (https, keep-alive): ${Math.round(ingestRate)} events/s, p50 ${percentile(ingest.latencies, 50).toFixed(1)} ms, p99 ${percentile(ingest.latencies, 99).toFixed(1)} ms per ${BATCH}-event request`,
  );
  console.log(`ingest_ratio=${(ingestRate / bareRate).toFixed(2)}`);
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
