import { createLogger, MemoryBus } from "@k8s-audit/core";
import { loadRulePack, loadRules } from "@k8s-audit/rules";
import { describe, expect, it } from "vitest";
import { createDetectorMetrics, Detector, startDetectorService } from "../src/index.js";

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

  it("counts events, alerts by rule and the window engine's keys and evictions in its Prometheus metrics", async () => {
    const bus = new MemoryBus();
    const topics = { events: "e", alerts: "a", deadLetter: "d" };
    const pack = loadRulePack();
    const metrics = createDetectorMetrics();
    const detector = new Detector(pack.rules, { windowRules: pack.windowRules });
    const sub = await startDetectorService({ bus, topics, detector, metrics, logger: createLogger({ level: "silent" }) });
    const events = Array.from({ length: 30 }, (_, i) => ({
      level: "Metadata",
      auditID: `m-${i}`,
      stage: "ResponseComplete",
      verb: "get",
      requestURI: "/api/v1/namespaces/prod/secrets/s",
      user: {},
      sourceIPs: ["203.0.113.9"],
      responseStatus: { code: 401 },
      stageTimestamp: new Date(Date.UTC(2026, 0, 1, 0, 0, i)).toISOString(),
      cluster: "c",
    }));
    await bus.publish(
      topics.events,
      [...events, { ...events[0], auditID: "late", stageTimestamp: "2026-01-01T00:05:00Z" }].map((e) => ({ value: JSON.stringify(e) })),
    );
    for (let i = 0; i < 100 && !bus.read("a").some((m) => m.value.includes("auth.unauthenticated_burst")); i++)
      await new Promise((r) => setTimeout(r, 10));
    await sub.stop();
    const text = await metrics.registry.metrics();
    expect(text).toMatch(/^k8s_audit_detector_events_total 31$/m);
    expect(text).toMatch(/^k8s_audit_detector_alerts_total\{rule="auth.unauthenticated_burst"\} 1$/m);
    expect(text).toMatch(/^k8s_audit_window_open_keys [1-9]\d*$/m);
    expect(text).toMatch(/^k8s_audit_window_late_events_total 0$/m);
  });
});
