import { describe, expect, it } from "vitest";
import { type ConsumedMessage, MemoryBus } from "../src/index.js";

/** Well under the 20,000 published: the consumed prefix was dropped. */
const TRIM_CHECK = 10_000;

describe("MemoryBus", () => {
  it("delivers in order and redelivers a batch whose handler failed (commit only after work)", async () => {
    const bus = new MemoryBus(2);
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
});
