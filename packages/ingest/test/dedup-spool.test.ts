import { mkdtempSync, readdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createLogger, MemoryBus } from "@k8s-audit/core";
import { describe, expect, it } from "vitest";
import { RecentEvents, Spool } from "../src/index.js";

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
});
