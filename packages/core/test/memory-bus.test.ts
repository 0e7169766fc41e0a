import { pino } from "pino";
import { describe, expect, it } from "vitest";
import { type ConsumedMessage, MemoryBus } from "../src/index.js";

/** A logger whose lines the test reads back, as pino writes them (err serialised). */
function capturingLogger() {
  const lines: Record<string, any>[] = [];
  const logger = pino({ level: "debug" }, { write: (line: string) => void lines.push(JSON.parse(line)) });
  return { logger, lines };
}

async function until(done: () => boolean, ms = 2000): Promise<void> {
  for (const started = Date.now(); !done() && Date.now() - started < ms; ) await new Promise((r) => setTimeout(r, 5));
}

/** Well under the 20,000 published: the consumed prefix was dropped. */
const TRIM_CHECK = 10_000;

describe("MemoryBus", () => {
  it("delivers in order and redelivers a batch whose handler failed (commit only after work)", async () => {
    const { logger, lines } = capturingLogger();
    const bus = new MemoryBus({ maxBatch: 2, logger });
    const seen: string[] = [];
    let failOnce = true;
    const sub = await bus.consume({
      topic: "t",
      groupId: "g",
      eachBatch: async (batch: ConsumedMessage[]) => {
        if (failOnce && batch.some((m) => m.value === "c")) {
          failOnce = false;
          throw new Error("downstream down");
        }
        seen.push(...batch.map((m) => m.value));
      },
    });
    await bus.publish(
      "t",
      ["a", "b", "c", "d"].map((value) => ({ value })),
    );
    for (let i = 0; i < 50 && seen.length < 4; i++) await new Promise((r) => setTimeout(r, 20));
    await sub.stop();
    expect(seen).toEqual(["a", "b", "c", "d"]);
    expect(lines.map((l) => [l.msg, l.err?.message, l.offset])).toEqual([
      ["batch handler failed; the batch is delivered again", "downstream down", "2"],
    ]);
  });

  it("resumes a consumer group at its committed offset", async () => {
    const bus = new MemoryBus();
    const first: string[] = [];
    const sub = await bus.consume({ topic: "t", groupId: "g", eachBatch: async (b) => void first.push(...b.map((m) => m.value)) });
    await bus.publish("t", [{ value: "1" }]);
    await new Promise((r) => setTimeout(r, 20));
    await sub.stop();
    await bus.publish("t", [{ value: "2" }]);
    const second: string[] = [];
    const sub2 = await bus.consume({ topic: "t", groupId: "g", eachBatch: async (b) => void second.push(...b.map((m) => m.value)) });
    await new Promise((r) => setTimeout(r, 20));
    await sub2.stop();
    expect(first).toEqual(["1"]);
    expect(second).toEqual(["2"]);
  });

  it("drops what every group has committed, and caps a topic nobody reads", async () => {
    const bus = new MemoryBus({ maxUnconsumedMessages: 1000 });
    let seenA = 0;
    let seenB = 0;
    let lastOffset = -1;
    const a = await bus.consume({
      topic: "t",
      groupId: "a",
      eachBatch: async (batch) => {
        seenA += batch.length;
        lastOffset = Number(batch[batch.length - 1]?.offset);
      },
    });
    // Group b stops before the end: what it has not committed is kept for it.
    const b = await bus.consume({
      topic: "t",
      groupId: "b",
      eachBatch: async (batch) => {
        seenB += batch.length;
      },
    });
    for (let i = 0; i < 20; i++)
      await bus.publish(
        "t",
        Array.from({ length: 1000 }, (_, j) => ({ value: `${i}-${j}` })),
      );
    for (let i = 0; i < 100 && (seenA < 20_000 || seenB < 20_000); i++) await new Promise((r) => setTimeout(r, 10));
    expect([seenA, seenB, lastOffset]).toEqual([20_000, 20_000, 19_999]);
    expect(bus.read("t").length).toBeLessThan(TRIM_CHECK);
    await b.stop();
    await bus.publish(
      "t",
      Array.from({ length: 10_000 }, (_, j) => ({ value: `late-${j}` })),
    );
    for (let i = 0; i < 100 && seenA < 30_000; i++) await new Promise((r) => setTimeout(r, 10));
    expect(bus.read("t").length).toBeGreaterThanOrEqual(10_000);
    const again = await bus.consume({
      topic: "t",
      groupId: "b",
      eachBatch: async (batch) => {
        seenB += batch.length;
      },
    });
    for (let i = 0; i < 100 && seenB < 30_000; i++) await new Promise((r) => setTimeout(r, 10));
    expect(seenB).toBe(30_000);
    await Promise.all([a.stop(), again.stop()]);

    for (let i = 0; i < 5; i++)
      await bus.publish(
        "unread",
        Array.from({ length: 1000 }, () => ({ value: "x" })),
      );
    expect(bus.read("unread").length).toBeLessThanOrEqual(1100);
    expect(bus.droppedUnconsumed.get("unread")).toBeGreaterThanOrEqual(3900);
  });

  it("logs each failure with the error, retries with backoff, then dead-letters the batch and moves on", async () => {
    const { logger, lines } = capturingLogger();
    const bus = new MemoryBus({ maxBatch: 2, logger, deadLetterTopic: "dlq", maxAttempts: 3, initialBackoffMs: 1, maxBackoffMs: 2 });
    const seen: string[] = [];
    let deliveries = 0;
    const sub = await bus.consume({
      topic: "t",
      groupId: "shipper",
      eachBatch: async (batch) => {
        if (batch.some((m) => m.value === "poison")) {
          deliveries++;
          throw new Error("downstream refuses");
        }
        seen.push(...batch.map((m) => m.value));
      },
    });
    await bus.publish("t", [{ key: "k1", value: "poison", headers: { "x-k8s-audit-cluster": "prod" } }, { value: "b" }]);
    await bus.publish("t", [{ value: "after" }]);
    await until(() => seen.includes("after"));
    await sub.stop();

    expect(deliveries).toBe(3);
    expect(seen).toEqual(["after"]);
    expect(bus.read("dlq").map((m) => ({ key: m.key, value: m.value, headers: m.headers }))).toEqual([
      {
        key: "k1",
        value: "poison",
        headers: {
          "x-k8s-audit-cluster": "prod",
          "x-k8s-audit-reason": "shipper: batch handler failed 3 times: downstream refuses",
          "x-k8s-audit-stage": "shipper",
        },
      },
      {
        key: undefined,
        value: "b",
        headers: { "x-k8s-audit-reason": "shipper: batch handler failed 3 times: downstream refuses", "x-k8s-audit-stage": "shipper" },
      },
    ]);
    const failures = lines.filter((l) => l.err);
    expect(failures.map((l) => [l.level, l.attempt, l.topic, l.groupId, l.offset])).toEqual([
      [40, 1, "t", "shipper", "0"],
      [40, 2, "t", "shipper", "0"],
      [50, 3, "t", "shipper", "0"],
    ]);
    // The whole error, not only its message: type and stack too.
    for (const l of failures)
      expect(l.err).toMatchObject({ type: "Error", message: "downstream refuses", stack: expect.stringContaining("Error") });
  });

  it("doubles the wait between deliveries up to the cap", async () => {
    const { logger, lines } = capturingLogger();
    const bus = new MemoryBus({ logger, maxAttempts: 5, initialBackoffMs: 2, maxBackoffMs: 5 });
    const sub = await bus.consume({
      topic: "t",
      groupId: "g",
      eachBatch: async () => {
        throw new Error("down");
      },
    });
    await bus.publish("t", [{ value: "x" }]);
    await until(() => bus.read("k8s-audit.deadletter").length > 0);
    await sub.stop();
    expect(lines.filter((l) => l.retryInMs !== undefined).map((l) => l.retryInMs)).toEqual([2, 4, 5, 5]);
    expect(bus.read("k8s-audit.deadletter").map((m) => m.value)).toEqual(["x"]);
  });

  it("stops at once while waiting to deliver a failed batch again", async () => {
    const { logger } = capturingLogger();
    const bus = new MemoryBus({ logger, initialBackoffMs: 60_000 });
    let delivered = false;
    const sub = await bus.consume({
      topic: "t",
      groupId: "g",
      eachBatch: async () => {
        delivered = true;
        throw new Error("down");
      },
    });
    await bus.publish("t", [{ value: "x" }]);
    await until(() => delivered);
    const started = Date.now();
    await sub.stop();
    expect(Date.now() - started).toBeLessThan(1000);
  });

  it("does not feed a group reading the dead-letter topic its own failures", async () => {
    const { logger, lines } = capturingLogger();
    const bus = new MemoryBus({ maxBatch: 1, logger, deadLetterTopic: "dlq", maxAttempts: 2, initialBackoffMs: 1 });
    const seen: string[] = [];
    const sub = await bus.consume({
      topic: "dlq",
      groupId: "inspector",
      eachBatch: async (batch) => {
        if (batch.some((m) => m.value === "bad")) throw new Error("cannot read it");
        seen.push(...batch.map((m) => m.value));
      },
    });
    await bus.publish("dlq", [{ value: "bad" }]);
    await bus.publish("dlq", [{ value: "next" }]);
    await until(() => seen.length > 0);
    await sub.stop();
    expect(seen).toEqual(["next"]);
    expect(bus.read("dlq").map((m) => m.value)).toEqual(["bad", "next"]);
    expect(lines.filter((l) => l.err).length).toBe(2);
  });
});
