import { createLogger, MemoryBus } from "@k8s-audit/core";
import { describe, expect, it } from "vitest";
import { Detector, loadRules, startDetectorService } from "../src/index.js";

describe("detector stage", () => {
  it("publishes alerts and dead-letters records that are not audit events, with the reason", async () => {
    const bus = new MemoryBus();
    const topics = { events: "e", alerts: "a", deadLetter: "d" };
    const sub = await startDetectorService({ bus, topics, detector: new Detector(loadRules()), logger: createLogger({ level: "silent" }) });
    const binding = {
      level: "RequestResponse",
      auditID: "b-1",
      stage: "ResponseComplete",
      verb: "create",
      requestURI: "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
      user: { username: "alice" },
      objectRef: { resource: "clusterrolebindings", apiGroup: "rbac.authorization.k8s.io", name: "x" },
      requestObject: { roleRef: { name: "cluster-admin" } },
      responseStatus: { code: 201 },
      stageTimestamp: "2026-01-01T00:00:00Z",
      cluster: "c",
    };
    await bus.publish(topics.events, [
      { value: JSON.stringify(binding) },
      { value: "{not json" },
      { value: JSON.stringify({ auditID: 3 }) },
    ]);
    for (let i = 0; i < 50 && bus.read("d").length < 2; i++) await new Promise((r) => setTimeout(r, 10));
    await sub.stop();
    expect(bus.read("a").map((m) => JSON.parse(m.value).rule.id)).toContain("rbac.binding_to_cluster_admin");
    expect(bus.read("d").map((m) => m.headers?.["x-k8s-audit-reason"])).toEqual([
      "detector: event is not JSON",
      expect.stringMatching(/^detector: invalid event: /),
    ]);
  });
});
