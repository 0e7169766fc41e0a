import { describe, expect, it } from "vitest";
import { type ConsumedMessage, MemoryBus } from "../src/index.js";

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
});
