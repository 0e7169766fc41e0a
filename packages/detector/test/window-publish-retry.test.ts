import { type Alert, AuditEventSchema, type Bus, createLogger, MemoryBus } from "@k8s-audit/core";
import { loadDetection } from "@k8s-audit/rules";
import { describe, expect, it } from "vitest";
import { Detector, startWindowService } from "../src/index.js";

/**
 * The window stage emits a storm's head once, when the storm opens. If that publish fails (the broker just died), the
 * alert must still go out later: it is kept and sent first by the next batch or check, not lost with a redelivered
 * batch (the fault suite's broker case lost one so). Events written for this test.
 */
const pack = loadDetection();
const topics = { events: "t.events", alerts: "t.alerts", deadLetter: "t.deadletter", windows: "t.windows" };

function bindingAlert(): Alert {
  const at = Date.now() - 60_000;
  const alerts = new Detector(pack.rules, { stormWindowMs: 0 }).evaluate(
    AuditEventSchema.parse({
      level: "RequestResponse",
      auditID: "req-1",
      stage: "ResponseComplete",
      requestURI: "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
      verb: "create",
      user: { username: "mallory", groups: ["system:authenticated"] },
      sourceIPs: ["192.0.2.10"],
      objectRef: { resource: "clusterrolebindings", apiGroup: "rbac.authorization.k8s.io", apiVersion: "v1", name: "backdoor" },
      requestObject: {
        kind: "ClusterRoleBinding",
        roleRef: { kind: "ClusterRole", name: "cluster-admin" },
        subjects: [{ kind: "User", name: "eve" }],
      },
      responseStatus: { code: 201 },
      requestReceivedTimestamp: new Date(at - 3).toISOString(),
      stageTimestamp: new Date(at).toISOString(),
      cluster: "prod",
    }),
  );
  return alerts.find((a) => a.rule.id === "rbac.binding_to_cluster_admin") as Alert;
}

describe("window stage when the alerts publish fails", () => {
  it("sends the alert later instead of losing it", async () => {
    const inner = new MemoryBus();
    let failures = 1;
    const bus = new Proxy(inner, {
      get(target, prop) {
        if (prop === "publish")
          return (topic: string, messages: unknown[]) => {
            if (topic === topics.alerts && messages.length > 0 && failures > 0) {
              failures--;
              return Promise.reject(new Error("broker down"));
            }
            return target.publish(topic, messages as never);
          };
        const value = Reflect.get(target, prop);
        return typeof value === "function" ? value.bind(target) : value;
      },
    }) as Bus;
    const service = await startWindowService({
      bus,
      topics,
      windowRules: pack.windowRules,
      logger: createLogger({ level: "silent" }),
      idleCheckMs: 50,
    });
    const seen: Alert[] = [];
    const reader = await inner.consume({
      topic: topics.alerts,
      groupId: "reader",
      eachBatch: async (messages) => {
        for (const m of messages) seen.push(JSON.parse(m.value) as Alert);
      },
    });
    await inner.publish(topics.windows, [{ key: "k", value: JSON.stringify({ alerts: [bindingAlert()] }) }]);
    const until = Date.now() + 5000;
    while (seen.length === 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
    await service.stop();
    await reader.stop();
    expect(failures).toBe(0);
    expect(seen.map((a) => a.rule.id)).toEqual(["rbac.binding_to_cluster_admin"]);
  });
});
