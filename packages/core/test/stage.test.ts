import { Registry } from "prom-client";
import { describe, expect, it } from "vitest";
import { createLogger, createOpsEndpoints, loadConfig, MemoryBus, runStages, type Stage } from "../src/index.js";

const logger = createLogger({ level: "silent" });
const topics = { events: "e", alerts: "a", deadLetter: "d" };

/** A stage that records what the runner asks of it; `failStart` makes its start throw half-way. */
function recording(name: string, log: string[], failStart = false): Stage {
  return {
    name,
    async start() {
      log.push(`start ${name}`);
      if (failStart) throw new Error(`${name} could not start`);
    },
    async ready() {
      return true;
    },
    async stop() {
      log.push(`stop ${name}`);
    },
  };
}

describe("runStages", () => {
  it("starts stages in order and stops them in reverse", async () => {
    const log: string[] = [];
    const running = await runStages([recording("a", log), recording("b", log)], {
      bus: new MemoryBus(),
      topics,
      config: loadConfig({}),
      logger,
    });
    await running.stop();
    expect(log).toEqual(["start a", "start b", "stop b", "stop a"]);
  });

  it("stops a stage whose start failed half-way, then those before it, and reports the failure", async () => {
    const log: string[] = [];
    const run = runStages([recording("a", log), recording("b", log, true), recording("c", log)], {
      bus: new MemoryBus(),
      topics,
      config: loadConfig({}),
      logger,
    });
    await expect(run).rejects.toThrow("b could not start");
    expect(log).toEqual(["start a", "start b", "stop b", "stop a"]);
  });

  it("answers /readyz with the stages that are not ready, details only for an authorized reader", async () => {
    const waiting: Stage = { ...recording("shipper", []), ready: async () => false, readyDetails: () => ({ queued: 3 }) };
    const ops = createOpsEndpoints([recording("detector", []), waiting], new Registry(), {
      authorizeMetrics: (authorization) => authorization === "Bearer scrape",
    });
    const open = await ops.respond("/readyz", undefined);
    expect(open?.status).toBe(503);
    expect(JSON.parse(open?.body ?? "")).toEqual({ status: "not ready: shipper" });
    const authorized = await ops.respond("/readyz", "Bearer scrape");
    expect(JSON.parse(authorized?.body ?? "")).toEqual({
      status: "not ready: shipper",
      stages: { detector: true, shipper: false },
      queued: 3,
    });
    expect((await ops.respond("/metrics", undefined))?.status).toBe(401);
    expect(await ops.respond("/other", undefined)).toBeUndefined();
  });
});
