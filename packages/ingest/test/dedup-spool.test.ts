import { mkdtempSync, readdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createLogger, MemoryBus } from "@k8s-audit/core";
import { describe, expect, it } from "vitest";
import {
  createIngestMetrics,
  FUTURE_STAMP_ANNOTATION,
  Ingestor,
  ingestDedupKey,
  RecentEvents,
  Spool,
  warmRecentEvents,
} from "../src/index.js";

describe("RecentEvents", () => {
  it("remembers keys for the window only", () => {
    const r = new RecentEvents(1000, 10);
    r.add(["a"], 0);
    expect(r.has("a", 999)).toBe(true);
    expect(r.has("a", 1000)).toBe(false);
  });

  it("stays within its capacity, forgetting the oldest first", () => {
    const r = new RecentEvents(60_000, 3);
    r.add(["a", "b", "c", "d"], 0);
    expect(r.size).toBe(3);
    expect(r.has("a", 1)).toBe(false);
    expect(r.has("d", 1)).toBe(true);
  });
});

describe("ingest dedup identity", () => {
  const event = (requestReceivedTimestamp: string) => ({
    level: "Metadata",
    auditID: "client-chosen-id",
    stage: "ResponseComplete",
    requestURI: "/api/v1/namespaces/default/pods",
    verb: "list",
    user: { username: "bob" },
    requestReceivedTimestamp,
    stageTimestamp: "2026-01-01T00:00:01.000000Z",
  });

  it("tells apart two requests sharing auditID, stage and stageTimestamp by their received time; drops an exact re-send", async () => {
    const bus = new MemoryBus();
    const metrics = createIngestMetrics();
    const ingestor = new Ingestor({
      bus,
      topics: { events: "e", alerts: "a", deadLetter: "d" },
      logger: createLogger({ level: "silent" }),
      metrics,
      dedup: new RecentEvents(),
    });
    const first = event("2026-01-01T00:00:00.100000Z");
    const second = event("2026-01-01T00:00:00.200000Z");
    // The Audit-ID header is the client's: two different requests can carry the same one.
    expect((await ingestor.ingest([first, second], "prod")).body).toMatchObject({ accepted: 2, deduplicated: 0 });
    // The apiserver re-sends a batch whose answer it did not see: the same events again.
    expect((await ingestor.ingest([first, second], "prod")).body).toMatchObject({ accepted: 0, deduplicated: 2 });
    // Within one batch too.
    expect(
      (await ingestor.ingest([event("2026-01-01T00:00:00.300000Z"), event("2026-01-01T00:00:00.300000Z")], "prod")).body,
    ).toMatchObject({
      accepted: 1,
      deduplicated: 1,
    });
    // Another cluster's request is another request.
    expect((await ingestor.ingest([first], "staging")).body).toMatchObject({ accepted: 1, deduplicated: 0 });
    expect(bus.read("e").map((m) => JSON.parse(m.value).requestReceivedTimestamp)).toEqual([
      "2026-01-01T00:00:00.100000Z",
      "2026-01-01T00:00:00.200000Z",
      "2026-01-01T00:00:00.300000Z",
      "2026-01-01T00:00:00.100000Z",
    ]);
  });

  it("keeps an event stamped far ahead of its clock, marked with how far", async () => {
    const bus = new MemoryBus();
    const ingestor = new Ingestor({
      bus,
      topics: { events: "e", alerts: "a", deadLetter: "d" },
      logger: createLogger({ level: "silent" }),
      metrics: createIngestMetrics(),
    });
    const late = { ...event("2026-01-01T00:00:00.100000Z"), auditID: "ok" };
    const future = { ...event("2100-01-01T00:00:00.000000Z"), auditID: "future", stageTimestamp: "2100-01-01T00:00:00.100000Z" };
    expect((await ingestor.ingest([late, future], "prod")).body).toMatchObject({ accepted: 2 });
    const stored = bus.read("e").map((m) => JSON.parse(m.value));
    expect(stored[0].annotations?.[FUTURE_STAMP_ANNOTATION]).toBeUndefined();
    expect(Number(stored[1].annotations[FUTURE_STAMP_ANNOTATION])).toBeGreaterThan(60 * 365 * 86_400);
  });

  it("keys on cluster, auditID, requestReceivedTimestamp, stage and stageTimestamp", () => {
    const e = { ...event("2026-01-01T00:00:00.100000Z"), auditID: "a" } as Parameters<typeof ingestDedupKey>[1];
    expect(ingestDedupKey("prod", e)).toBe("prod|a|2026-01-01T00:00:00.100000Z|ResponseComplete|2026-01-01T00:00:01.000000Z");
  });
});

describe("Spool", () => {
  const logger = createLogger({ level: "silent" });

  it("keeps segments across restarts, drains them in order and refuses past its bound", async () => {
    const dir = mkdtempSync(join(tmpdir(), "spool-"));
    const down = new MemoryBus();
    await down.close();
    const first = new Spool(dir, 10_000, down, logger);
    expect(await first.append([{ topic: "t", messages: [{ value: "1" }] }])).toBe(true);
    expect(await first.append([{ topic: "t", messages: [{ value: "2" }, { value: "3" }] }])).toBe(true);
    expect(await first.append([{ topic: "t", messages: [{ value: "x".repeat(20_000) }] }])).toBe(false);
    expect(readdirSync(dir)).toHaveLength(2);

    // A new process finds the segments and drains them once the bus works.
    const bus = new MemoryBus();
    const second = new Spool(dir, 10_000, bus, logger);
    expect(second.pending).toBe(true);
    second.start(10);
    expect(await second.flush(2000)).toBe(true);
    await second.stop();
    expect(bus.read("t").map((m) => m.value)).toEqual(["1", "2", "3"]);
    expect(readdirSync(dir)).toHaveLength(0);
  });

  it("tells a restarted ingest's dedup what already waits in it, for the events topic only", async () => {
    const dir = mkdtempSync(join(tmpdir(), "spool-"));
    const down = new MemoryBus();
    await down.close();
    const stored = { auditID: "a-1", cluster: "prod", stage: "ResponseComplete", requestReceivedTimestamp: "t0", stageTimestamp: "t1" };
    const other = { ...stored, auditID: "dead-1" };
    await new Spool(dir, 10_000, down, logger).append([
      { topic: "events", messages: [{ value: JSON.stringify(stored) }] },
      { topic: "deadletter", messages: [{ value: JSON.stringify(other) }] },
    ]);
    const restarted = new Spool(dir, 10_000, down, logger);
    expect([...restarted.waiting("events")].map((m) => m.value)).toEqual([JSON.stringify(stored)]);
    const dedup = new RecentEvents(60_000, 100);
    // The in-memory bus cannot read back its tail: only the spool teaches the dedup here.
    const learned = await warmRecentEvents(dedup, {
      bus: down,
      topic: "events",
      windowMs: 60_000,
      capacity: 100,
      spool: restarted,
      logger,
    });
    expect(learned).toEqual({ fromTopic: 0, fromSpool: 1 });
    expect(dedup.has(ingestDedupKey("prod", stored as never))).toBe(true);
    expect(dedup.has(ingestDedupKey("prod", other as never))).toBe(false);
  });
});
