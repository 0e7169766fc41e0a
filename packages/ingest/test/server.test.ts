import { existsSync, mkdtempSync, readdirSync, readFileSync, unlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { createLogger, MemoryBus } from "@k8s-audit/core";
import { auditEvent } from "@k8s-audit/testkit";
import { afterEach, describe, expect, it } from "vitest";
import { createIngestMetrics, createIngestServer, Ingestor, TokenSet } from "../src/index.js";

const topics = { events: "events", alerts: "alerts", deadLetter: "dlq" };
const logger = createLogger({ level: "silent" });
const REAL_AUDIT = process.env.K8S_AUDIT_REAL_AUDIT_DIR ?? resolve(import.meta.dirname, "../../../../shared/real-audit");
const HAVE_FALCO = existsSync(join(REAL_AUDIT, "falcosecurity-falco"));
if (!HAVE_FALCO)
  console.warn(`[ingest tests] ${REAL_AUDIT}/falcosecurity-falco not found: the real-data case is skipped (set K8S_AUDIT_REAL_AUDIT_DIR)`);

/** Bob listing namespaces: the webhook's handling is under test, any valid event will do; keys are by auditID. */
const event = (auditID: string, extra: Record<string, unknown> = {}) =>
  auditEvent({
    level: "Metadata",
    auditID,
    requestURI: "/api/v1/namespaces",
    user: { username: "bob" },
    stageTimestamp: "2026-01-01T00:00:00.000001Z",
    ...extra,
  });

let app: ReturnType<typeof createIngestServer> | undefined;
afterEach(async () => {
  await app?.close();
  app = undefined;
});

function setup(tokens?: string[]) {
  const bus = new MemoryBus();
  app = createIngestServer({ bus, topics, logger, defaultCluster: "fallback", ...(tokens ? { tokens: new TokenSet(tokens) } : {}) });
  return { bus, app };
}

const post = (body: unknown, url = "/audit", headers: Record<string, string> = {}) =>
  app?.inject({
    method: "POST",
    url,
    headers: { "content-type": "application/json", ...headers },
    payload: typeof body === "string" ? body : JSON.stringify(body),
  });

describe("ingest webhook", () => {
  it("accepts an EventList, stamps the cluster from the path and keys by cluster/auditID", async () => {
    const { bus } = setup();
    const res = await post({ kind: "EventList", apiVersion: "audit.k8s.io/v1", items: [event("a"), event("b")] }, "/audit/prod-1");
    expect(res?.statusCode).toBe(200);
    expect(res?.json()).toEqual({ accepted: 2, rejected: 0, deduplicated: 0, truncated: 0, storedIn: "bus" });
    const stored = bus.read("events");
    expect(stored.map((m) => m.key)).toEqual(["prod-1/a", "prod-1/b"]);
    expect(JSON.parse(stored[0]?.value ?? "{}").cluster).toBe("prod-1");
  });

  it("takes the cluster from the header, else the default", async () => {
    const { bus } = setup();
    await post(event("h"), "/audit", { "x-k8s-audit-cluster": "staging" });
    await post([event("d")]);
    expect(bus.read("events").map((m) => m.key)).toEqual(["staging/h", "fallback/d"]);
    expect((await post(event("x"), "/audit", { "x-k8s-audit-cluster": "bad name!" }))?.statusCode).toBe(400);
  });

  it("keeps the valid items of a mixed batch and dead-letters the rest with the reason", async () => {
    const { bus } = setup();
    const res = await post({ kind: "EventList", items: [event("ok"), { auditID: "broken" }] });
    expect(res?.statusCode).toBe(200);
    const body = res?.json();
    expect(body).toMatchObject({ accepted: 1, rejected: 1 });
    expect(body.errors[0]).toMatchObject({ index: 1 });
    expect(body.errors[0].reason).toContain("level");
    const dlq = bus.read("dlq");
    expect(dlq).toHaveLength(1);
    expect(JSON.parse(dlq[0]?.value ?? "{}")).toEqual({ auditID: "broken" });
    expect(dlq[0]?.headers?.["x-k8s-audit-reason"]).toMatch(/^invalid event: /);
  });

  it("answers malformed JSON with 400 and a clear message, storing nothing", async () => {
    const { bus } = setup();
    const res = await post('{"kind":"EventList","items":[');
    expect(res?.statusCode).toBe(400);
    expect(res?.json().error).toMatch(/^malformed JSON/);
    expect(bus.read("events")).toHaveLength(0);
  });

  it("answers 503 with Retry-After when the bus cannot store the events", async () => {
    const { bus } = setup();
    await bus.close();
    const res = await post(event("z"));
    expect(res?.statusCode).toBe(503);
    expect(res?.headers["retry-after"]).toBe("5");
  });

  it("requires a valid bearer token when tokens are configured", async () => {
    setup(["old-token", "new-token"]);
    expect((await post(event("1")))?.statusCode).toBe(401);
    expect((await post(event("2"), "/audit", { authorization: "Bearer wrong" }))?.statusCode).toBe(401);
    expect((await post(event("3"), "/audit", { authorization: "Bearer new-token" }))?.statusCode).toBe(200);
    expect((await post(event("4"), "/audit", { authorization: "Bearer old-token" }))?.statusCode).toBe(200);
  });

  it.skipIf(!HAVE_FALCO)("accepts every Falco fixture wrapped as an EventList; the malformed one gets a clear 4xx", async () => {
    const { bus } = setup();
    const dir = join(REAL_AUDIT, "falcosecurity-falco");
    let accepted = 0;
    for (const file of readdirSync(dir).filter((f) => f.endsWith(".json"))) {
      const items = readFileSync(join(dir, file), "utf8")
        .split("\n")
        .filter((l) => l.trim())
        .map((l) => JSON.parse(l));
      const res = await post({ kind: "EventList", apiVersion: "audit.k8s.io/v1", items });
      if (file === "fal_01_003.json") {
        expect(res?.statusCode, file).toBe(400);
        expect(res?.json().errors[0].reason).toBeTruthy();
      } else {
        expect(res?.statusCode, `${file}: ${res?.body}`).toBe(200);
        accepted += items.length;
      }
    }
    expect(bus.read("events")).toHaveLength(accepted);
    // SOURCES.md: 45 single-event files plus 6 lines in create_configmap_sensitive_values.json.
    expect(accepted).toBe(51);
  });
});

describe("TokenSet", () => {
  it("parses token files with comments and blank lines", async () => {
    const { parseTokenFile } = await import("../src/index.js");
    expect(parseTokenFile("# rotate monthly\nabc\n\n  def  \r\n")).toEqual({ lines: [{ token: "abc" }, { token: "def" }], errors: [] });
  });

  it("binds tokens to clusters; reports malformed lines by number, never with the token", async () => {
    const { parseTokenFile } = await import("../src/index.js");
    expect(parseTokenFile("t1 prod-a\nt2 prod-a,prod-b\nt3 *\nt4 bad/name\nsecret-token a b\n")).toEqual({
      lines: [
        { token: "t1", clusters: ["prod-a"] },
        { token: "t2", clusters: ["prod-a", "prod-b"] },
        { token: "t3", clusters: ["*"] },
      ],
      errors: [expect.stringMatching(/^line 4: invalid cluster name "bad\/name"/), expect.stringMatching(/^line 5: expected/)],
    });
    expect(JSON.stringify(parseTokenFile("secret-token a b").errors)).not.toContain("secret-token");
  });

  it("rejects non-Bearer schemes and empty sets", () => {
    expect(new TokenSet(["t"]).verifyAuthorization("Basic dDp0")).toBe(false);
    expect(new TokenSet([]).verifyAuthorization("Bearer t")).toBe(false);
  });
});

describe("ingest front door: authentication before the body, tenancy, parsing", () => {
  const tokenSet = () =>
    new TokenSet([
      { token: "token-a", clusters: ["a"] },
      { token: "legacy" },
      { token: "token-any", clusters: ["*"] },
      { token: "token-ab", clusters: ["b", "a"] },
    ]);
  const withToken = (token: string, headers: Record<string, string> = {}) => ({ authorization: `Bearer ${token}`, ...headers });

  it("refuses an unauthenticated request before its body is read or reserved: 401 and Connection: close", async () => {
    const bus = new MemoryBus();
    app = createIngestServer({ bus, topics, logger, defaultCluster: "fallback", tokens: tokenSet() });
    // Malformed JSON: a 400 would mean the body was read and parsed before authentication.
    const res = await post("{not json", "/audit", { authorization: "Bearer nope" });
    expect(res?.statusCode).toBe(401);
    expect(res?.headers.connection).toBe("close");
    expect(res?.json().error).toBe("missing or invalid bearer token");
    expect(await app.metrics.inflightBytes.get()).toMatchObject({ values: [{ value: 0 }] });
    expect((await app.metrics.authFailures.get()).values).toEqual([expect.objectContaining({ labels: { reason: "bad_token" }, value: 1 })]);
  });

  it("binds each token to its clusters: home cluster by default, 403 naming the binding for another one", async () => {
    const bus = new MemoryBus();
    app = createIngestServer({ bus, topics, logger, defaultCluster: "fallback", tokens: tokenSet() });
    expect((await post(event("1"), "/audit", withToken("token-a")))?.statusCode).toBe(200);
    expect((await post(event("2"), "/audit/a", withToken("token-a")))?.statusCode).toBe(200);
    const other = await post(event("3"), "/audit/b", withToken("token-a"));
    expect(other?.statusCode).toBe(403);
    expect(other?.headers.connection).toBe("close");
    expect(other?.json().error).toBe('bearer token may write cluster "a", not "b"');
    const header = await post(event("4"), "/audit", withToken("token-a", { "x-k8s-audit-cluster": "b" }));
    expect(header?.statusCode).toBe(403);
    const both = await post(event("5"), "/audit/a", withToken("token-a", { "x-k8s-audit-cluster": "b" }));
    expect(both?.statusCode).toBe(400);
    expect(both?.json().error).toMatch(/path names cluster "a" and the X-K8s-Audit-Cluster header "b"/);
    // A bare (legacy) token line writes the default cluster only; `*` writes any; several: the first is home.
    expect((await post(event("6"), "/audit", withToken("legacy")))?.statusCode).toBe(200);
    expect((await post(event("7"), "/audit/a", withToken("legacy")))?.statusCode).toBe(403);
    expect((await post(event("8"), "/audit/anything", withToken("token-any")))?.statusCode).toBe(200);
    expect((await post(event("9"), "/audit", withToken("token-any")))?.statusCode).toBe(200);
    expect((await post(event("10"), "/audit", withToken("token-ab")))?.statusCode).toBe(200);
    expect((await post(event("11"), "/audit/a", withToken("token-ab")))?.statusCode).toBe(200);
    expect(bus.read("events").map((m) => m.key)).toEqual(["a/1", "a/2", "fallback/6", "anything/8", "fallback/9", "b/10", "a/11"]);
  });

  it("answers 413 for a declared body over the limit without reading it", async () => {
    app = createIngestServer({ bus: new MemoryBus(), topics, logger, defaultCluster: "d", bodyLimitBytes: 1024 });
    const res = await app.inject({
      method: "POST",
      url: "/audit",
      headers: { "content-type": "application/json", "content-length": "5000" },
      payload: "x".repeat(5000),
    });
    expect(res.statusCode).toBe(413);
    expect(res.headers.connection).toBe("close");
  });

  it("takes application/json only: text/plain (what a web page can post cross-origin) gets 415", async () => {
    setup();
    const res = await post(event("t"), "/audit", { "content-type": "text/plain" });
    expect(res?.statusCode).toBe(415);
    expect(res?.json().error).toMatch(/Unsupported Media Type/i);
    expect((await post(event("j"), "/audit", { "content-type": "application/json; charset=utf-8" }))?.statusCode).toBe(200);
  });

  it("keeps a batch with a patch body nested 10,000 deep: the deep value is marked, the other event untouched", async () => {
    const { bus } = setup();
    const deep = `${'{"a":'.repeat(10_000)}1${"}".repeat(10_000)}`;
    const legit = event("legit", {
      level: "RequestResponse",
      verb: "create",
      requestObject: { kind: "ClusterRoleBinding", roleRef: { name: "cluster-admin" } },
    });
    const body = `{"kind":"EventList","items":[${JSON.stringify(event("deep", { level: "Request", verb: "patch" })).slice(0, -1)},"requestObject":${deep}},${JSON.stringify(legit)}]}`;
    const res = await post(body);
    expect(res?.statusCode).toBe(200);
    expect(res?.json()).toMatchObject({ accepted: 2, rejected: 0, truncated: 1 });
    const [stored, other] = bus.read("events").map((m) => JSON.parse(m.value));
    expect(stored.auditID).toBe("deep");
    expect(stored.annotations).toMatchObject({
      "audit.k8s.io/truncated": "true",
      "k8s-audit.io/truncated-fields": "requestObject(nested too deep)",
    });
    expect(JSON.stringify(stored.requestObject)).toContain('{"truncated":true,"reason":"depth","depth":9872}');
    expect(other).toMatchObject({ ...legit, cluster: "fallback" });
  });

  it("makes one failing item a dead letter with the reason, never a 5xx for the batch", async () => {
    const bus = new MemoryBus();
    const ingestor = new Ingestor({ bus, topics, logger, metrics: createIngestMetrics() });
    const hostile = {
      get auditID(): string {
        throw new RangeError("Maximum call stack size exceeded");
      },
    };
    const result = await ingestor.ingest({ kind: "EventList", items: [hostile, event("fine")] }, "c");
    expect(result.status).toBe(200);
    expect(result.body).toMatchObject({
      accepted: 1,
      rejected: 1,
      errors: [{ index: 0, reason: expect.stringMatching(/^ingest failed: /) }],
    });
    expect(bus.read("events").map((m) => m.key)).toEqual(["c/fine"]);
    const [dead] = bus.read("dlq");
    expect(dead?.headers?.["x-k8s-audit-reason"]).toBe("ingest failed: Maximum call stack size exceeded");
  });

  it("guards /metrics and the details of /readyz with the metrics token when one is set", async () => {
    app = createIngestServer({ bus: new MemoryBus(), topics, logger, defaultCluster: "d", metricsTokens: new TokenSet(["scrape"]) });
    expect((await app.inject({ url: "/metrics" })).statusCode).toBe(401);
    expect((await app.inject({ url: "/metrics", headers: { authorization: "Bearer scrape" } })).statusCode).toBe(200);
    expect((await app.inject({ url: "/readyz" })).json()).toEqual({ status: "ready" });
    expect((await app.inject({ url: "/readyz", headers: { authorization: "Bearer scrape" } })).json()).toEqual({
      status: "ready",
      stages: { ingest: true },
      spooledBytes: 0,
    });
    expect((await app.inject({ url: "/healthz" })).statusCode).toBe(200);
  });

  it("revokes every token when the token file is deleted or emptied; a malformed line does not keep a revoked token", async () => {
    const dir = mkdtempSync(join(tmpdir(), "tokens-"));
    const file = join(dir, "tokens");
    writeFileSync(file, "one a\ntwo a\n");
    app = createIngestServer({ bus: new MemoryBus(), topics, logger, defaultCluster: "a", tokensFile: file, reloadIntervalMs: 20 });
    const status = async (token: string) => (await post(event(`${token}-${Math.random()}`), "/audit", withToken(token)))?.statusCode;
    /** The reload is polled: wait (bounded) until the token gets `code`. */
    const becomes = async (token: string, code: number) => {
      for (const until = Date.now() + 3000; Date.now() < until; await new Promise((r) => setTimeout(r, 20)))
        if ((await status(token)) === code) return code;
      return status(token);
    };
    expect(await status("one")).toBe(200);
    unlinkSync(file);
    expect(await becomes("one", 401)).toBe(401);
    writeFileSync(file, "one a\ntwo a\n");
    expect(await becomes("two", 200)).toBe(200);
    writeFileSync(file, "two a\nthree a,bad/name\n"); // revokes one; line 2 is a typo
    expect(await becomes("one", 401)).toBe(401);
    expect(await status("two")).toBe(200);
    expect(await status("three")).toBe(401);
    writeFileSync(file, "");
    expect(await becomes("two", 401)).toBe(401);
  });
});
