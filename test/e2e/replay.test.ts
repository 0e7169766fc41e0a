import { execFile, execFileSync } from "node:child_process";
import { randomUUID } from "node:crypto";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { startPipeline } from "@k8s-audit/cli";
import { loadConfig } from "@k8s-audit/core";
import { alertsDataStream, createElasticsearchClient, eventsDataStream } from "@k8s-audit/shipper";
import { auditEvent, CLI, clusterAdminBinding, eventList, quietLogger, readTopic, uniqueTopics } from "@k8s-audit/testkit";
import { afterAll, describe, expect, inject, it } from "vitest";
import { startTestIngest } from "../support/ingest.js";

/** Investigations on the real engines: the same alert ids as the live path, and case data streams in Elasticsearch. */
describe("replay on the real engines", () => {
  const brokers = inject("kafkaBrokers");
  const esUrl = inject("elasticsearchUrl");
  const cleanup: (() => Promise<void>)[] = [];
  afterAll(async () => {
    for (const c of cleanup.reverse()) await c();
  });

  // Distinct principals and resources, so no storm folding blurs the comparison.
  const events = [
    clusterAdminBinding("b1", "eve", { user: { username: "alice", groups: ["system:authenticated"] } }),
    clusterAdminBinding("b2", "eve", { user: { username: "bob", groups: ["system:authenticated"] } }),
    auditEvent({
      verb: "list",
      requestURI: "/api/v1/secrets",
      userAgent: "curl/8.5.0",
      objectRef: { resource: "secrets", apiVersion: "v1" },
      user: { username: "carol", groups: ["system:authenticated"] },
    }),
    auditEvent(),
  ];

  it("gives the same alert ids offline as the live path on the same events", async () => {
    const topics = uniqueTopics("e2e-replay");
    const config = loadConfig({
      KAFKA_BROKERS: brokers,
      K8S_AUDIT_LISTEN: "127.0.0.1:0",
      K8S_AUDIT_TOPIC_EVENTS: topics.events,
      K8S_AUDIT_TOPIC_ALERTS: topics.alerts,
      K8S_AUDIT_TOPIC_DEADLETTER: topics.deadLetter,
      K8S_AUDIT_SPOOL_MAX_BYTES: "0",
    });
    const live = await startPipeline({ config, logger: quietLogger, stages: { ingest: true, detect: true, ship: false } });
    cleanup.push(() => live.stop());
    const res = await fetch(`${live.url}/prod-eu-1`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(eventList(events)),
    });
    expect(res.status).toBe(200);
    const liveIds = (await readTopic(brokers, topics.alerts, 100, 8000)).map((m) => m.key).sort();

    const dir = mkdtempSync(join(tmpdir(), "replay-e2e-"));
    writeFileSync(join(dir, "audit.log"), `${events.map((e) => JSON.stringify(e)).join("\n")}\n`);
    const out = join(dir, "alerts.ndjson");
    execFileSync(process.execPath, [CLI, "replay", dir, "--cluster", "prod-eu-1", "--out", out, "--no-progress"], {
      env: { ...process.env, LOG_LEVEL: "warn" },
      stdio: "pipe",
    });
    const offlineIds = readFileSync(out, "utf8")
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l).event.id)
      .sort();
    expect(liveIds.length).toBeGreaterThanOrEqual(4);
    expect(offlineIds).toEqual(liveIds);
  });

  it("stores a case's alerts and events in their own data streams, queryable, and a second run adds nothing", async () => {
    const caseId = `INC-${randomUUID().slice(0, 6)}`;
    const namespace = `case_${caseId.toLowerCase().replace("-", "_")}`;
    const dir = mkdtempSync(join(tmpdir(), "replay-e2e-"));
    writeFileSync(join(dir, "audit.log"), `${events.map((e) => JSON.stringify(e)).join("\n")}\n`);
    const env = { ...process.env, ELASTICSEARCH_URL: esUrl, LOG_LEVEL: "warn" };
    const run = () =>
      execFileSync(
        process.execPath,
        [CLI, "replay", dir, "--cluster", "prod-eu-1", "--case", caseId, "--include-events", "--no-progress"],
        { env, stdio: "pipe" },
      );
    const es = createElasticsearchClient(esUrl);
    cleanup.push(() => es.close());
    const alerts = alertsDataStream(namespace);
    const raw = eventsDataStream(namespace);
    run();
    await es.indices.refresh({ index: [alerts, raw] });
    const afterFirst = (await es.count({ index: alerts })).count;
    run();
    await es.indices.refresh({ index: [alerts, raw] });
    const byRule = await es.search({ index: alerts, size: 50, query: { term: { "rule.id": "rbac.binding_to_cluster_admin" } } });
    expect(byRule.hits.hits.map((h) => (h._source as any).user.name).sort()).toEqual(["alice", "bob"]);
    expect((byRule.hits.hits[0]?._source as any)?.labels?.case).toBe(caseId);
    const rawCount = await es.count({ index: raw, query: { term: { "orchestrator.cluster.name": "prod-eu-1" } } });
    expect(rawCount.count).toBe(events.length);
    const secrets = await es.search({
      index: raw,
      query: { bool: { filter: [{ term: { "kubernetes.audit.objectRef.resource": "secrets" } }, { term: { "event.action": "list" } }] } },
    });
    expect(secrets.hits.hits).toHaveLength(1);
    // deterministic ids: the second replay stored nothing new
    expect(afterFirst).toBeGreaterThanOrEqual(4);
    expect((await es.count({ index: alerts })).count).toBe(afterFirst);
  });

  it("forwards to a Kafka topic and to an ingest webhook as an apiserver would", async () => {
    const dir = mkdtempSync(join(tmpdir(), "replay-e2e-"));
    writeFileSync(join(dir, "audit.log"), `${events.map((e) => JSON.stringify(e)).join("\n")}\n`);
    const topic = `e2e-replay-${randomUUID().slice(0, 8)}`;
    const env = { ...process.env, KAFKA_BROKERS: brokers, LOG_LEVEL: "warn" };
    execFileSync(process.execPath, [CLI, "replay", dir, "--cluster", "prod-eu-1", "--to-kafka", topic, "--no-progress"], {
      env,
      stdio: "pipe",
    });
    const published = await readTopic(brokers, topic, events.length);
    expect(published.map((m) => m.key).sort()).toEqual(events.map((e) => `prod-eu-1/${e.auditID}`).sort());
    expect(published[0]?.headers?.["x-k8s-audit-source"]).toBe("replay");

    const ingest = await startTestIngest(brokers);
    cleanup.push(ingest.stop);
    // Asynchronously: the ingest under test lives in this process and must keep answering.
    await promisify(execFile)(process.execPath, [CLI, "replay", dir, "--to-webhook", `${ingest.url}/restored`, "--no-progress"], { env });
    const received = await readTopic(brokers, ingest.topics.events, events.length);
    expect(received.map((m) => m.key).sort()).toEqual(events.map((e) => `restored/${e.auditID}`).sort());
  });
});
