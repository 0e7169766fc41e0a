import { randomUUID } from "node:crypto";
import { Writable } from "node:stream";
import { startPipeline } from "@k8s-audit/cli";
import { loadConfig } from "@k8s-audit/core";
import { REDACTED_ANNOTATION, TRUNCATED_ANNOTATION, TRUNCATED_FIELDS_ANNOTATION } from "@k8s-audit/ingest";
import { alertsDataStream, createElasticsearchClient } from "@k8s-audit/shipper";
import { auditEvent, clusterAdminBinding, eventList, readTopic, uniqueTopics } from "@k8s-audit/testkit";
import { pino } from "pino";
import { afterAll, describe, expect, inject, it } from "vitest";
import { postJson, startTestIngest } from "../support/ingest.js";

/** What the ingest does to the data, checked in the real Kafka (and Elasticsearch for the secrets scan). */
describe("ingest data handling", () => {
  const brokers = inject("kafkaBrokers");
  const esUrl = inject("elasticsearchUrl");
  const cleanup: (() => Promise<void>)[] = [];
  afterAll(async () => {
    for (const c of cleanup.reverse()) await c();
  });

  it("keeps the valid events of a mixed batch in Kafka and puts the invalid ones in the dead-letter topic", async () => {
    const ingest = await startTestIngest(brokers);
    cleanup.push(ingest.stop);
    const good = [auditEvent(), auditEvent()];
    const bad = { auditID: "no-level-no-stage", verb: "get" };
    const res = await postJson(ingest.url, eventList([good[0], bad, good[1]]));
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ accepted: 2, rejected: 1, errors: [{ index: 1 }] });
    const events = await readTopic(brokers, ingest.topics.events, 2);
    expect(events.map((m) => JSON.parse(m.value).auditID).sort()).toEqual(good.map((g) => g.auditID).sort());
    const [dead] = await readTopic(brokers, ingest.topics.deadLetter, 1);
    expect(JSON.parse(dead?.value ?? "")).toEqual(bad);
    expect(dead?.headers?.["x-k8s-audit-reason"]).toMatch(/invalid event: level: /);
  });

  it("keeps an oversize event's bodies minus the bulk, marked as truncated", async () => {
    const ingest = await startTestIngest(brokers, { maxEventBytes: 8 * 1024 });
    cleanup.push(ingest.stop);
    const big = auditEvent({
      verb: "create",
      requestObject: { kind: "ConfigMap", data: { blob: "x".repeat(50_000) } },
      responseObject: { kind: "ConfigMap" },
    });
    const res = await postJson(ingest.url, eventList([big]));
    expect(res.body).toMatchObject({ accepted: 1, truncated: 1 });
    const [stored] = await readTopic(brokers, ingest.topics.events, 1);
    const event = JSON.parse(stored?.value ?? "");
    expect(event.auditID).toBe(big.auditID);
    // The key stays (rules test key names); the 50 KB value is cut to a prefix and a marker.
    expect(Object.keys(event.requestObject.data)).toEqual(["blob"]);
    expect(event.requestObject.data.blob).toMatch(/…\[truncated, 50000 chars\]$/);
    expect(event.responseObject).toEqual({ kind: "ConfigMap" });
    expect(event.annotations[TRUNCATED_ANNOTATION]).toBe("true");
    expect(event.annotations[TRUNCATED_FIELDS_ANNOTATION]).toBe("requestObject.data.blob");
    expect(Number(event.annotations["k8s-audit.io/original-bytes"])).toBeGreaterThan(50_000);
    expect(stored?.value.length).toBeLessThan(8 * 1024);
  });

  it("drops an exact re-send of a batch and counts it", async () => {
    const ingest = await startTestIngest(brokers, { dedup: true });
    cleanup.push(ingest.stop);
    const batch = eventList([auditEvent(), auditEvent(), auditEvent()]);
    expect((await postJson(ingest.url, batch)).body).toMatchObject({ accepted: 3, deduplicated: 0 });
    expect((await postJson(ingest.url, batch)).body).toMatchObject({ accepted: 0, deduplicated: 3 });
    const events = await readTopic(brokers, ingest.topics.events, 4, 5000);
    expect(events).toHaveLength(3);
    const metrics = await (await fetch(ingest.url.replace("/audit", "/metrics"))).text();
    expect(metrics).toMatch(/k8s_audit_ingest_events_deduplicated_total 3/);
  });

  it("lets no planted secret value reach Kafka (any topic), Elasticsearch or the logs", async () => {
    const planted = `planted-${randomUUID()}`;
    const b64 = Buffer.from(planted).toString("base64");
    const topics = uniqueTopics("e2e-secrets");
    const namespace = `e2e_${randomUUID().slice(0, 8)}`;
    const logLines: string[] = [];
    const logger = pino(
      { level: "trace" },
      new Writable({
        write(chunk, _enc, cb) {
          logLines.push(String(chunk));
          cb();
        },
      }),
    );
    const config = loadConfig({
      KAFKA_BROKERS: brokers,
      ELASTICSEARCH_URL: esUrl,
      K8S_AUDIT_LISTEN: "127.0.0.1:0",
      K8S_AUDIT_TOPIC_EVENTS: topics.events,
      K8S_AUDIT_TOPIC_ALERTS: topics.alerts,
      K8S_AUDIT_TOPIC_DEADLETTER: topics.deadLetter,
      K8S_AUDIT_ES_NAMESPACE: namespace,
      K8S_AUDIT_SPOOL_MAX_BYTES: "0",
    });
    const pipeline = await startPipeline({ config, logger, stages: { ingest: true, detect: true, ship: true } });
    cleanup.push(() => pipeline.stop());
    const secretRef = { resource: "secrets", namespace: "prod", name: "db", apiVersion: "v1" };
    const secret = {
      kind: "Secret",
      apiVersion: "v1",
      metadata: { name: "db", namespace: "prod" },
      data: { password: b64 },
      stringData: { raw: planted },
    };
    const items = [
      auditEvent({ verb: "create", objectRef: secretRef, requestObject: secret, responseObject: { ...secret, stringData: undefined } }),
      auditEvent({
        verb: "list",
        objectRef: { ...secretRef, name: undefined },
        responseObject: { kind: "SecretList", items: [{ data: { password: b64 } }] },
      }),
      auditEvent({ verb: "patch", objectRef: secretRef, requestObject: [{ op: "replace", path: "/data/password", value: b64 }] }),
      auditEvent({
        verb: "create",
        objectRef: { resource: "serviceaccounts", subresource: "token", namespace: "prod", name: "ci" },
        responseObject: { kind: "TokenRequest", status: { token: planted } },
      }),
      auditEvent({ requestURI: `/api/v1/pods?access_token=${planted}` }),
      // an invalid item bound for the dead-letter topic, carrying a secret
      { objectRef: secretRef, requestObject: secret },
      // and an alert-raising event, so the alerts topic and Elasticsearch are not empty
      clusterAdminBinding(),
    ];
    const res = await postJson(`${pipeline.url}/secrets-test`, eventList(items));
    expect(res.body).toMatchObject({ accepted: 6, rejected: 1 });

    const events = await readTopic(brokers, topics.events, 6);
    const dead = await readTopic(brokers, topics.deadLetter, 1);
    const alerts = await readTopic(brokers, topics.alerts, 100, 5000);
    expect(events).toHaveLength(6);
    expect(dead).toHaveLength(1);
    expect(alerts.map((m) => JSON.parse(m.value).rule.id)).toContain("rbac.binding_to_cluster_admin");
    const es = createElasticsearchClient(esUrl);
    const index = alertsDataStream(namespace);
    let docs: unknown[] = [];
    for (let i = 0; i < 40 && docs.length < alerts.length; i++) {
      await new Promise((r) => setTimeout(r, 250));
      if (!(await es.indices.exists({ index }))) continue;
      await es.indices.refresh({ index });
      docs = (await es.search({ index, size: 100 })).hits.hits.map((h) => h._source);
    }
    await es.close();
    expect(docs).toHaveLength(alerts.length);

    const everything =
      [...events, ...dead, ...alerts].map((m) => `${m.value}${JSON.stringify(m.headers ?? {})}`).join("\n") +
      JSON.stringify(docs) +
      logLines.join("");
    expect(everything).not.toContain(planted);
    expect(everything).not.toContain(b64);
    expect(everything).not.toContain(encodeURIComponent(planted));
    // what was removed is named on the event, so analysts know the keys that changed
    const created = events.map((m) => JSON.parse(m.value)).find((e) => e.verb === "create" && e.objectRef.resource === "secrets");
    expect(created.annotations[REDACTED_ANNOTATION]).toContain("requestObject.data");
    expect(Object.keys(created.requestObject.data)).toEqual(["password"]);
  });
});
