import { execFile } from "node:child_process";
import { randomUUID } from "node:crypto";
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { ConsumedMessage } from "@k8s-audit/core";
import { SHIPPED_SIGMA_DIR } from "@k8s-audit/rules";
import { alertsDataStream, createElasticsearchClient, eventsDataStream } from "@k8s-audit/shipper";
import { CLI, type CliProcess, eventList, findMarkers, type PlantedCase, plantedCorpus, readTopic, startCli } from "@k8s-audit/testkit";
import { afterAll, describe, expect, inject, it } from "vitest";

/**
 * Issue #12's acceptance: the planted-secret corpus (packages/testkit/src/planted-secrets.ts) through everything that writes
 * data — the ingest with raw-event shipping into a detector and a shipper (`k8s-audit start` on the real Kafka and
 * Elasticsearch), and `k8s-audit replay` into a case (`--case --include-events`), an alerts file, stdout and a Kafka
 * topic — then every Kafka topic used, every Elasticsearch index touched, every process's stdout and stderr and every
 * alerts file is scanned: no marker, plain or base64, anywhere. The rules that fire on the planted events must still
 * fire, so redaction does not blind detection.
 */
describe("planted secrets: nothing leaks anywhere", () => {
  const brokers = inject("kafkaBrokers");
  const esUrl = inject("elasticsearchUrl");
  const es = createElasticsearchClient(esUrl);
  const corpus = plantedCorpus();
  const valid = corpus.filter((c) => c.valid);
  const expectedRules = [...new Set(corpus.flatMap((c) => c.alerts ?? []))].sort();
  const id = randomUUID().slice(0, 8);
  const dir = mkdtempSync(join(tmpdir(), "planted-secrets-"));
  const started = Date.now();
  const cleanup: (() => Promise<void>)[] = [];
  afterAll(async () => {
    for (const c of cleanup.reverse()) await c();
    await es.close();
  });

  /** Every record of a topic with its key and headers, read from the beginning for `ms`. */
  async function dumpTopic(topic: string, ms = 8_000): Promise<string> {
    const seen = await readTopic(brokers, topic, () => false, ms);
    return seen.map((m: ConsumedMessage) => JSON.stringify({ key: m.key, headers: m.headers, value: m.value })).join("\n");
  }

  /** Every document of every index whose name has one of `names` or that was created since the test started. */
  async function dumpElasticsearch(names: string[]): Promise<{ indices: string[]; text: string }> {
    const all = (await es.cat.indices({ format: "json", expand_wildcards: "all", h: "index,creation.date" })) as unknown as {
      index: string;
      "creation.date": string;
    }[];
    const indices = all.filter((i) => names.some((n) => i.index.includes(n)) || Number(i["creation.date"]) >= started).map((i) => i.index);
    if (indices.length === 0) return { indices, text: "" };
    await es.indices.refresh({ index: indices, expand_wildcards: "all" });
    const parts: string[] = [];
    for (const index of indices) {
      const res = await es.search({ index, size: 10_000, query: { match_all: {} }, expand_wildcards: "all" });
      for (const hit of res.hits.hits) parts.push(JSON.stringify(hit));
    }
    return { indices, text: parts.join("\n") };
  }

  function leaks(where: string, text: string, cases: readonly PlantedCase[] = corpus): string[] {
    return findMarkers(text, cases).map((f) => `${where}: ${f}`);
  }

  function run(args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number; stdout: string; stderr: string }> {
    return new Promise((resolve) => {
      execFile(process.execPath, [CLI, ...args], { env, maxBuffer: 256 * 1024 * 1024 }, (err, stdout, stderr) =>
        resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
      );
    });
  }

  it("the live pipeline: ingest (dead letters included) → Kafka → detector → shipper with raw events → Elasticsearch", async () => {
    const namespace = `planted_${id}`;
    const topics = {
      events: `e2e-planted-${id}.events`,
      alerts: `e2e-planted-${id}.alerts`,
      deadLetter: `e2e-planted-${id}.deadletter`,
      windows: `e2e-planted-${id}.windows`,
    };
    const alertsFile = join(dir, "live-alerts.ndjson");
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      KAFKA_BROKERS: brokers,
      ELASTICSEARCH_URL: esUrl,
      K8S_AUDIT_SHIP_EVENTS: "true",
      K8S_AUDIT_ES_NAMESPACE: namespace,
      K8S_AUDIT_TOPIC_EVENTS: topics.events,
      K8S_AUDIT_TOPIC_ALERTS: topics.alerts,
      K8S_AUDIT_TOPIC_DEADLETTER: topics.deadLetter,
      K8S_AUDIT_TOPIC_WINDOWS: topics.windows,
      K8S_AUDIT_CONSUMER_GROUP_PREFIX: `e2e-planted-${id}`,
      K8S_AUDIT_SPOOL_DIR: join(dir, "spool"),
      K8S_AUDIT_ALERTS_FILE: alertsFile,
      K8S_AUDIT_SIGMA_DIR: SHIPPED_SIGMA_DIR,
      // The most the processes will say: a leak through a log line is a leak too.
      LOG_LEVEL: "debug",
    };
    const cli: CliProcess = await startCli(["start", "--listen", "127.0.0.1:0", "--cluster", "prod-eu-1"], env);
    let stopped = false;
    const stop = async () => {
      if (stopped) return;
      stopped = true;
      cli.proc.kill("SIGTERM");
      await cli.exited;
    };
    cleanup.push(stop);

    // Valid events in batches of a few (one request per case would also be fine); the dead letters on their own.
    for (let i = 0; i < valid.length; i += 10) {
      const res = await fetch(`${cli.url}/prod-eu-1`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(eventList(valid.slice(i, i + 10).map((c) => c.item))),
      });
      expect(res.status, await res.text()).toBe(200);
    }
    const invalid = corpus.filter((c) => !c.valid);
    const res = await fetch(`${cli.url}/prod-eu-1`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(eventList(invalid.map((c) => c.item))),
    });
    const answer = await res.text();
    expect(answer).toContain(`"rejected":${invalid.length}`);
    expect(leaks("the ingest's answer", answer)).toEqual([]);

    // Wait until the shipper has stored the raw events and the expected alerts are in Elasticsearch.
    const alertIndex = alertsDataStream(namespace);
    const eventIndex = eventsDataStream(namespace);
    const deadline = Date.now() + 90_000;
    let rules: string[] = [];
    let rawEvents = 0;
    while (Date.now() < deadline) {
      try {
        await es.indices.refresh({ index: [alertIndex, eventIndex] });
        rawEvents = (await es.count({ index: eventIndex })).count;
        const found = await es.search({ index: alertIndex, size: 0, aggs: { rules: { terms: { field: "rule.id", size: 500 } } } });
        rules = ((found.aggregations?.rules as { buckets: { key: string }[] } | undefined)?.buckets ?? []).map((b) => b.key);
        if (rawEvents >= valid.length - 10 && expectedRules.every((r) => rules.includes(r))) break;
      } catch {
        // the data streams appear with their first document
      }
      await new Promise((r) => setTimeout(r, 1000));
    }
    await new Promise((r) => setTimeout(r, 3000));
    expect(
      expectedRules.filter((r) => !rules.includes(r)),
      `fired: ${rules.join(", ")}`,
    ).toEqual([]);
    expect(rawEvents).toBeGreaterThan(valid.length / 2);

    const [events, alerts, deadLetters, windows, store] = await Promise.all([
      dumpTopic(topics.events),
      dumpTopic(topics.alerts),
      dumpTopic(topics.deadLetter),
      dumpTopic(topics.windows),
      dumpElasticsearch([namespace]),
    ]);
    // The scan saw what it is meant to scan: every valid event and every dead letter, redacted.
    for (const c of valid) expect(events, `case ${c.id} on the events topic`).toContain((c.item as { auditID: string }).auditID);
    expect(deadLetters.split("\n").length).toBeGreaterThanOrEqual(invalid.length);
    expect(store.indices).toEqual(expect.arrayContaining([expect.stringContaining(alertIndex), expect.stringContaining(eventIndex)]));
    await stop();
    const found = [
      ...leaks("Kafka events topic", events),
      ...leaks("Kafka alerts topic", alerts),
      ...leaks("Kafka dead-letter topic", deadLetters),
      ...leaks("Kafka windows topic", windows),
      ...leaks(`Elasticsearch (${store.indices.join(", ")})`, store.text),
      ...leaks("start's stdout", cli.stdout()),
      ...leaks("start's stderr", cli.stderr()),
      ...leaks("start's alerts file", readFileSync(alertsFile, "utf8")),
    ];
    expect(found).toEqual([]);
    expect(events).toContain("k8s-audit.io/redacted");
  }, 240_000);

  it("replay: --case --include-events, --out, stdout and --to-kafka", async () => {
    const logs = join(dir, "archive");
    const lines = corpus.map((c) => JSON.stringify(c.item));
    // A record that is not JSON at all still carries a marker: replay reports it as malformed without quoting it.
    const broken = `{"kind":"Secret","data":{"password":"PLANTED-0x0-${id}"`;
    const brokenCase: PlantedCase = {
      id: 0,
      name: "malformed JSON line",
      category: "malformed",
      item: [],
      markers: [`PLANTED-0x0-${id}`],
      valid: false,
    };
    const cases = [...corpus, brokenCase];
    mkdirSync(logs, { recursive: true });
    writeFileSync(join(logs, "audit.log"), `${[...lines, broken].join("\n")}\n`);
    const caseId = `PLANTED-CASE-${id}`;
    const caseNamespace = `case_planted_case_${id}`;
    const topic = `e2e-planted-${id}.replay`;
    const out = join(dir, "replay-alerts.ndjson");
    const env = {
      ...process.env,
      KAFKA_BROKERS: brokers,
      ELASTICSEARCH_URL: esUrl,
      K8S_AUDIT_SIGMA_DIR: SHIPPED_SIGMA_DIR,
      LOG_LEVEL: "debug",
    };
    const common = [logs, "--cluster", "prod-eu-1", "--no-progress"];
    const toCase = await run(["replay", ...common, "--case", caseId, "--include-events"], env);
    const toFile = await run(["replay", ...common, "--out", out], env);
    const toStdout = await run(["replay", ...common], env);
    const toKafka = await run(["replay", ...common, "--to-kafka", topic], env);
    for (const r of [toCase, toFile, toStdout, toKafka]) expect(r.code, r.stderr).toBe(0);
    expect(toCase.stderr).toContain(`${valid.length} events in`);
    expect(toStdout.stderr).toContain("malformed");

    // Detection on the redacted events: the expected rules fired (per case, by auditID).
    const replayed = readFileSync(out, "utf8")
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as { rule: { id: string }; kubernetes: { audit: { auditID: string[] } } });
    const missing: string[] = [];
    for (const c of corpus.filter((x) => x.alerts)) {
      const auditID = (c.item as { auditID: string }).auditID;
      for (const rule of c.alerts ?? [])
        if (!replayed.some((a) => a.rule.id === rule && a.kubernetes.audit.auditID.includes(auditID)))
          missing.push(`case ${c.id}: ${rule}`);
    }
    expect(missing).toEqual([]);

    const [forwarded, store] = await Promise.all([dumpTopic(topic), dumpElasticsearch([caseNamespace])]);
    expect(forwarded.split("\n").length).toBe(valid.length);
    expect(store.indices).toEqual(
      expect.arrayContaining([
        expect.stringContaining(alertsDataStream(caseNamespace)),
        expect.stringContaining(eventsDataStream(caseNamespace)),
      ]),
    );
    const found = [
      ...leaks("replay --to-kafka topic", forwarded, cases),
      ...leaks(`Elasticsearch (${store.indices.join(", ")})`, store.text, cases),
      ...leaks("replay --out file", readFileSync(out, "utf8"), cases),
      ...[toCase, toFile, toStdout, toKafka].flatMap((r, i) => [
        ...leaks(`replay run ${i} stdout`, r.stdout, cases),
        ...leaks(`replay run ${i} stderr`, r.stderr, cases),
      ]),
    ];
    expect(found).toEqual([]);
    // Annotation keys are stored with dots as underscores.
    expect(store.text).toContain("k8s-audit_io/redacted");
  }, 240_000);
});
