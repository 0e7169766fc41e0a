import { type Alert, AuditEventSchema } from "@k8s-audit/core";
import { loadDetection } from "@k8s-audit/rules";
import { StormAggregator } from "@k8s-audit/windows";
import { describe, expect, it } from "vitest";
import { Detector } from "../src/index.js";

/**
 * At-least-once delivery hands the window stage the same per-event alert again (a detector killed before it committed,
 * a rebalance): one request is one alert, whether it arrives once or three times, before or after its window closed.
 * Events written for this test.
 */
const pack = loadDetection();
const T0 = Date.UTC(2026, 8, 1, 8, 0, 0);

function binding(user: string, at: number, id: string): Alert {
  const [alert] = new Detector(pack.rules, { stormWindowMs: 0 })
    .evaluate(
      AuditEventSchema.parse({
        level: "RequestResponse",
        auditID: id,
        stage: "ResponseComplete",
        requestURI: "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
        verb: "create",
        user: { username: user, groups: ["system:authenticated"] },
        sourceIPs: ["192.0.2.10"],
        objectRef: { resource: "clusterrolebindings", apiGroup: "rbac.authorization.k8s.io", apiVersion: "v1", name: `b-${id}` },
        requestObject: {
          kind: "ClusterRoleBinding",
          roleRef: { kind: "ClusterRole", name: "cluster-admin" },
          subjects: [{ kind: "User", name: "eve" }],
        },
        responseStatus: { code: 201 },
        requestReceivedTimestamp: new Date(at - 3).toISOString(),
        stageTimestamp: new Date(at).toISOString(),
      }),
    )
    .filter((a) => a.rule.id === "rbac.binding_to_cluster_admin");
  return alert as Alert;
}

const fold = (alerts: Alert[], expireBetween = false) => {
  const storms = new StormAggregator(60_000);
  const out: Alert[] = [];
  for (const a of alerts) {
    const { emit, closed } = storms.offer(a, Date.parse(a["@timestamp"]));
    if (emit) out.push(emit);
    out.push(...closed);
    if (expireBetween) out.push(...storms.expire(Date.parse(a["@timestamp"]) + 10 * 60_000));
  }
  out.push(...storms.flush());
  return out.map((a) => `${a.event.id} ${a.event.count ?? 1}`).sort();
};

describe("storms under redelivery", () => {
  it("counts a redelivered alert once: no storm of one request", () => {
    const a = binding("mallory", T0, "req-1");
    expect(fold([a, a, a])).toEqual(fold([a]));
    expect(fold([a])).toHaveLength(1);
  });

  it("a redelivered alert after its window closed is not sent again", () => {
    const a = binding("mallory", T0, "req-1");
    expect(fold([a, a], true)).toEqual(fold([a]));
  });

  it("two different requests of one principal are still a storm of 2", () => {
    const a = binding("mallory", T0, "req-1");
    const b = binding("mallory", T0 + 5000, "req-2");
    const out = fold([a, b, a, b]);
    expect(out).toEqual(fold([a, b]));
    expect(out.some((l) => l.endsWith(" 2"))).toBe(true);
  });
});
