import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { createLogger, MemoryBus } from "@k8s-audit/core";
import { afterEach, describe, expect, it } from "vitest";
import { createIngestServer, TokenSet } from "../src/index.js";

const topics = { events: "events", alerts: "alerts", deadLetter: "dlq" };
const logger = createLogger({ level: "silent" });
const REAL_AUDIT = process.env.K8S_AUDIT_REAL_AUDIT_DIR ?? resolve(import.meta.dirname, "../../../../shared/real-audit");
const HAVE_FALCO = existsSync(join(REAL_AUDIT, "falcosecurity-falco"));
if (!HAVE_FALCO)
  console.warn(`[ingest tests] ${REAL_AUDIT}/falcosecurity-falco not found: the real-data case is skipped (set K8S_AUDIT_REAL_AUDIT_DIR)`);

function event(auditID: string, extra: Record<string, unknown> = {}) {
  return {
    level: "Metadata",
    auditID,
    stage: "ResponseComplete",
    requestURI: "/api/v1/namespaces",
    verb: "list",
    user: { username: "bob" },
    stageTimestamp: "2026-01-01T00:00:00.000001Z",
    ...extra,
  };
}

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
    expect(parseTokenFile("# rotate monthly\nabc\n\n  def  \r\n")).toEqual(["abc", "def"]);
  });

  it("rejects non-Bearer schemes and empty sets", () => {
    expect(new TokenSet(["t"]).verifyAuthorization("Basic dDp0")).toBe(false);
    expect(new TokenSet([]).verifyAuthorization("Bearer t")).toBe(false);
  });
});
