import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { type Alert, createLogger, MemoryBus } from "@k8s-audit/core";
import { Detector } from "@k8s-audit/detector";
import { loadRules } from "@k8s-audit/rules";
import { clusterAdminBinding, parsedAuditEvent } from "@k8s-audit/testkit";
import { afterEach, describe, expect, it } from "vitest";
import { type BulkDocument, bulkCreate, createElasticsearchClient, startShipperService } from "../src/index.js";

/** How Elasticsearch answers one `_bulk` request: a status per item, in the order sent, or one status for the whole request. */
type BulkAnswer = number[] | { whole: number };

const REFUSALS: Record<number, { type: string; reason: string }> = {
  400: { type: "document_parsing_exception", reason: "[1:42] failed to parse field [event.severity] of type [long]" },
  429: { type: "es_rejected_execution_exception", reason: "rejected execution of coordinating operation" },
};

const servers: Server[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => new Promise((r) => s.close(r))));
});

/**
 * A real HTTP server on loopback that answers `_bulk` as Elasticsearch does, one scripted answer per request (the last
 * repeats), and records the document ids each request carried. Anything else gets an empty 200.
 */
async function elasticsearch(answers: BulkAnswer[]): Promise<{ url: string; requests: string[][] }> {
  const requests: string[][] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const headers = { "content-type": "application/json", "x-elastic-product": "Elasticsearch" };
      if (!req.url?.startsWith("/_bulk")) return void res.writeHead(200, headers).end("{}");
      // NDJSON: an action line, then the document, for every item.
      const lines = Buffer.concat(chunks).toString("utf8").split("\n").filter(Boolean);
      const actions = lines.filter((_, i) => i % 2 === 0).map((l) => JSON.parse(l).create as { _index: string; _id: string });
      requests.push(actions.map((a) => a._id));
      const answer = answers[Math.min(requests.length, answers.length) - 1] as BulkAnswer;
      if ("whole" in answer) {
        const error = REFUSALS[answer.whole] ?? { type: "exception", reason: "failed" };
        return void res.writeHead(answer.whole, headers).end(JSON.stringify({ error, status: answer.whole }));
      }
      const items = actions.map((a, i) => {
        const status = answer[i] ?? 201;
        const error = status >= 400 ? { error: REFUSALS[status] ?? { type: "version_conflict_engine_exception", reason: "exists" } } : {};
        return { create: { _index: a._index, _id: a._id, status, ...error } };
      });
      res.writeHead(200, headers).end(JSON.stringify({ took: 1, errors: items.some((i) => i.create.status >= 300), items }));
    });
  });
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, requests };
}

const docs = (...ids: string[]): BulkDocument[] =>
  ids.map((id) => ({ id, index: "logs-k8s_audit.alert-test", document: { event: { id, severity: 73 } } }));

/** bulkCreate on the project's own client, with the waits it asks for recorded instead of waited. */
async function ship(
  url: string,
  batch: BulkDocument[],
  options: { maxAttempts?: number; initialBackoffMs?: number; maxBackoffMs?: number } = {},
) {
  const waits: number[] = [];
  const outcome = bulkCreate(createElasticsearchClient(url), batch, { ...options, sleep: async (ms) => void waits.push(ms) });
  return { outcome, waits };
}

describe("bulkCreate against Elasticsearch's _bulk", () => {
  it("re-sends only the items refused with 429, backing off between attempts, until they are stored", async () => {
    const es = await elasticsearch([[201, 429, 429], [429, 201], [201]]);
    const { outcome, waits } = await ship(es.url, docs("a", "b", "c"), { initialBackoffMs: 100 });
    expect(await outcome).toEqual({ stored: 3, rejected: [] });
    expect(es.requests).toEqual([["a", "b", "c"], ["b", "c"], ["b"]]);
    expect(waits).toEqual([100, 200]);
  });

  it("doubles the backoff up to its cap", async () => {
    const es = await elasticsearch([[429], [429], [429], [429], [201]]);
    const { outcome, waits } = await ship(es.url, docs("a"), { initialBackoffMs: 100, maxBackoffMs: 300 });
    expect(await outcome).toEqual({ stored: 1, rejected: [] });
    expect(waits).toEqual([100, 200, 300, 300]);
  });

  it("hands back a 400 mapping error at once as rejected, with its reason, without retrying it", async () => {
    const es = await elasticsearch([[201, 400]]);
    const { outcome, waits } = await ship(es.url, docs("a", "b"));
    const { stored, rejected } = await outcome;
    expect(stored).toBe(1);
    expect(rejected).toEqual([
      {
        doc: docs("b")[0],
        status: 400,
        reason: "document_parsing_exception: [1:42] failed to parse field [event.severity] of type [long]",
      },
    ]);
    expect(es.requests).toHaveLength(1);
    expect(waits).toEqual([]);
  });

  it("counts a 409 (already stored by an earlier send) as stored", async () => {
    const es = await elasticsearch([[409, 201]]);
    const { outcome } = await ship(es.url, docs("a", "b"));
    expect(await outcome).toEqual({ stored: 2, rejected: [] });
  });

  it("retries a whole request Elasticsearch refused (429), then stores the batch", async () => {
    const es = await elasticsearch([{ whole: 429 }, [201, 201]]);
    const { outcome, waits } = await ship(es.url, docs("a", "b"), { initialBackoffMs: 50 });
    expect(await outcome).toEqual({ stored: 2, rejected: [] });
    expect(es.requests).toEqual([
      ["a", "b"],
      ["a", "b"],
    ]);
    expect(waits).toEqual([50]);
  });

  it("gives up after maxAttempts by throwing, so the caller does not commit the batch", async () => {
    const es = await elasticsearch([[201, 429], [429]]);
    const { outcome, waits } = await ship(es.url, docs("a", "b"), { maxAttempts: 3, initialBackoffMs: 10 });
    await expect(outcome).rejects.toThrow("1 documents still refused after 3 attempts");
    expect(es.requests).toEqual([["a", "b"], ["b"], ["b"]]);
    expect(waits).toEqual([10, 20]);
  });

  it("gives up on whole-request refusals too, rethrowing Elasticsearch's error", async () => {
    const es = await elasticsearch([{ whole: 429 }]);
    const { outcome, waits } = await ship(es.url, docs("a"), { maxAttempts: 2, initialBackoffMs: 10 });
    await expect(outcome).rejects.toThrow(/es_rejected_execution_exception/);
    expect(es.requests).toHaveLength(2);
    expect(waits).toEqual([10]);
  });
});

describe("the shipper stage when Elasticsearch refuses items", () => {
  const detector = new Detector(loadRules(), { stormWindowMs: 0 });
  const bindingAlert = (name: string): Alert =>
    detector
      .evaluate(parsedAuditEvent(clusterAdminBinding(name, name, { cluster: "prod" })))
      .find((a) => a.rule.id === "rbac.binding_to_cluster_admin") as Alert;

  it("stores a 429 item on a later attempt and sends a mapping error to the dead-letter topic with its reason", async () => {
    const es = await elasticsearch([[429, 400], [201]]);
    const bus = new MemoryBus();
    const topics = { events: "t.events", alerts: "t.alerts", deadLetter: "t.deadletter" };
    const [retried, refused] = [bindingAlert("retried"), bindingAlert("refused")];
    await bus.publish(
      topics.alerts,
      [retried, refused].map((a) => ({ key: a.event.id, value: JSON.stringify(a) })),
    );
    const shipper = await startShipperService({
      bus,
      topics,
      es: createElasticsearchClient(es.url),
      logger: createLogger({ level: "silent" }),
      namespace: "test",
    });
    try {
      // Well inside the test's 5 s: the one retry waits the service's first backoff (200 ms).
      for (const until = Date.now() + 3_000; es.requests.length < 2 || bus.read(topics.deadLetter).length === 0; ) {
        if (Date.now() > until) throw new Error(`the batch was not done in 3 s; _bulk requests: ${JSON.stringify(es.requests)}`);
        await new Promise((r) => setTimeout(r, 20));
      }
    } finally {
      await shipper.stop();
    }
    expect(es.requests).toEqual([[retried.event.id, refused.event.id], [retried.event.id]]);
    const deadLetters = bus.read(topics.deadLetter);
    expect(deadLetters).toHaveLength(1);
    expect(JSON.parse(deadLetters[0]?.value ?? "{}").event.id).toBe(refused.event.id);
    expect(deadLetters[0]?.headers?.["x-k8s-audit-reason"]).toBe(
      "shipper: elasticsearch refused (400) document_parsing_exception: [1:42] failed to parse field [event.severity] of type [long]",
    );
  });
});
