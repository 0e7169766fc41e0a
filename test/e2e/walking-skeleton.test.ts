import { randomUUID } from "node:crypto";
import { startPipeline } from "@k8s-audit/cli";
import { loadConfig } from "@k8s-audit/core";
import { alertsDataStream, createElasticsearchClient } from "@k8s-audit/shipper";
import { auditEvent, clusterAdminBinding, eventList, quietLogger, readTopic, uniqueTopics } from "@k8s-audit/testkit";
import { stormHeadId } from "@k8s-audit/windows";
import { afterAll, describe, expect, inject, it } from "vitest";

/**
 * The spine, on the real engines, with each stage running on its own as in production:
 * webhook POST → ingest → events topic → detector → alerts topic → shipper → Elasticsearch.
 */
describe("walking skeleton: webhook to alert document", () => {
  const brokers = inject("kafkaBrokers");
  const esUrl = inject("elasticsearchUrl");
  const topics = uniqueTopics("e2e-skeleton");
  const namespace = `e2e_${randomUUID().slice(0, 8)}`;
  const config = loadConfig({
    KAFKA_BROKERS: brokers,
    ELASTICSEARCH_URL: esUrl,
    K8S_AUDIT_LISTEN: "127.0.0.1:0",
    K8S_AUDIT_CLUSTER: "prod-eu-1",
    K8S_AUDIT_TOPIC_EVENTS: topics.events,
    K8S_AUDIT_TOPIC_ALERTS: topics.alerts,
    K8S_AUDIT_TOPIC_DEADLETTER: topics.deadLetter,
    K8S_AUDIT_ES_NAMESPACE: namespace,
    KAFKA_PARTITIONS: "3",
  });
  const running: { stop(): Promise<void> }[] = [];
  const es = createElasticsearchClient(esUrl);

  afterAll(async () => {
    for (const p of running.reverse()) await p.stop();
    await es.close();
  });

  it("carries a cluster-admin binding from the webhook to an ECS alert in Elasticsearch", async () => {
    const ingest = await startPipeline({ config, logger: quietLogger, stages: { ingest: true, detect: false, ship: false } });
    running.push(ingest);
    // The detector runs without the ingest's HTTP server: it serves its own /metrics.
    const detect = await startPipeline({
      config: { ...config, K8S_AUDIT_METRICS_LISTEN: "127.0.0.1:0" },
      logger: quietLogger,
      stages: { ingest: false, detect: true, ship: false },
    });
    running.push(detect);
    running.push(await startPipeline({ config, logger: quietLogger, stages: { ingest: false, detect: false, ship: true } }));

    const binding = clusterAdminBinding("mallory-admin", "mallory");
    // The same request's RequestReceived stage, and an unrelated read: neither may raise an alert.
    const received = { ...binding, stage: "RequestReceived", responseStatus: undefined, responseObject: undefined };
    const benign = auditEvent();
    const res = await fetch(`${ingest.url}/prod-eu-1`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(eventList([received, binding, benign])),
    });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ accepted: 3, rejected: 0, deduplicated: 0, truncated: 0, storedIn: "bus" });

    // 1. every event is on the events topic, stamped with the cluster and keyed by cluster/auditID
    const events = await readTopic(brokers, topics.events, 3);
    expect(events).toHaveLength(3);
    for (const m of events) {
      const e = JSON.parse(m.value);
      expect(e.cluster).toBe("prod-eu-1");
      expect(m.key).toBe(`prod-eu-1/${e.auditID}`);
    }

    // 2. on the alerts topic: exactly one cluster-admin alert for the binding (the pack also logs the binding's creation
    //    at low severity), nothing for the RequestReceived stage or the read, and no rule twice for one request
    // The first alert of a rule for a principal in a minute goes out at once under an id of that minute (storm head).
    const minute = Math.floor(Date.parse(binding.stageTimestamp as string) / 60_000) * 60_000;
    const principal = (binding.user as { username: string }).username;
    const expectedId = stormHeadId("rbac.binding_to_cluster_admin", "prod-eu-1", principal, minute);
    const alerts = (await readTopic(brokers, topics.alerts, 2, 10_000)).map((m) => ({ key: m.key, alert: JSON.parse(m.value) }));
    expect(alerts.filter((a) => a.alert.rule.id === "rbac.binding_to_cluster_admin").map((a) => a.key)).toEqual([expectedId]);
    expect(alerts.every((a) => a.alert.kubernetes.audit.auditID[0] === binding.auditID)).toBe(true);
    const metrics = await (await fetch(detect.metricsUrl as string)).text();
    expect(metrics).toMatch(/^k8s_audit_detector_alerts_total\{rule="rbac.binding_to_cluster_admin"\} 1$/m);
    expect(metrics).toMatch(/^k8s_audit_window_open_keys \d+$/m);
    expect(new Set(alerts.map((a) => a.key)).size).toBe(alerts.length);

    // 3. the shipper indexed it into the alerts data stream under the deterministic id
    const index = alertsDataStream(namespace);
    let hits: { _id?: string; _source?: unknown }[] = [];
    for (let i = 0; i < 60 && hits.length < alerts.length; i++) {
      await new Promise((r) => setTimeout(r, 500));
      const exists = await es.indices.exists({ index });
      if (!exists) continue;
      await es.indices.refresh({ index });
      hits = (await es.search({ index, query: { match_all: {} } })).hits.hits;
    }
    expect(hits.map((h) => h._id).sort()).toEqual(alerts.map((a) => a.key).sort());
    const hit = hits.find((h) => h._id === expectedId) as { _id: string; _source: Record<string, any> };
    expect(hit._id).toBe(expectedId);
    const doc = hit._source;
    expect(doc["@timestamp"]).toBe(binding.stageTimestamp);
    expect(doc.event).toMatchObject({ kind: "alert", id: expectedId, severity: 73, risk_score: 73, action: "create", outcome: "success" });
    expect(Date.parse(doc.event.ingested)).toBeGreaterThan(Date.now() - 120_000);
    expect(doc.message).toContain("Binding to cluster-admin created");
    expect(doc.message).toContain("alice@example.com");
    expect(doc.rule).toMatchObject({ id: "rbac.binding_to_cluster_admin", ruleset: "k8s-audit-pipeline", version: "1" });
    expect(doc.threat.framework).toBe("MITRE ATT&CK");
    expect(doc.threat.tactic.id).toContain("TA0004");
    expect(doc.user.name).toBe("alice@example.com");
    expect(doc.source.ip).toBe("198.51.100.7");
    expect(doc.user_agent.original).toMatch(/^kubectl\//);
    expect(doc.orchestrator).toMatchObject({
      type: "kubernetes",
      cluster: { name: "prod-eu-1" },
      resource: { type: "clusterrolebindings", name: "mallory-admin" },
    });
    expect(doc.related).toEqual({ user: ["alice@example.com"], ip: ["198.51.100.7"] });
    expect(doc.kubernetes.audit.auditID).toEqual([binding.auditID]);
    expect(doc.data_stream).toEqual({ type: "logs", dataset: "k8s_audit.alert", namespace });

    // 4. the fields are searchable by their ECS names (mapped, not just stored)
    const byRule = await es.search({
      index,
      query: {
        bool: {
          filter: [
            { term: { "rule.id": "rbac.binding_to_cluster_admin" } },
            { term: { "kubernetes.audit.auditID": binding.auditID as string } },
            { term: { "source.ip": "198.51.100.7" } },
          ],
        },
      },
    });
    expect(byRule.hits.hits.map((h) => h._id)).toEqual([expectedId]);
  });
});
