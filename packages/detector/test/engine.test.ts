import { AuditEventSchema } from "@k8s-audit/core";
import { loadRules } from "@k8s-audit/rules";
import { describe, expect, it } from "vitest";
import { Detector } from "../src/index.js";

const rules = loadRules();
const at = (ms: number) => new Date(Date.UTC(2026, 10, 28, 12, 0, 0) + ms).toISOString();

function secretList(auditID: string, ms: number, user = "mallory") {
  return AuditEventSchema.parse({
    level: "Metadata",
    auditID,
    stage: "ResponseComplete",
    verb: "list",
    requestURI: "/api/v1/secrets",
    user: { username: user, groups: ["system:authenticated"] },
    objectRef: { resource: "secrets", apiVersion: "v1" },
    responseStatus: { code: 200 },
    stageTimestamp: at(ms),
    cluster: "prod",
  });
}

describe("Detector noise control", () => {
  it("raises one alert per request, whatever the number of stages", () => {
    const d = new Detector(rules);
    const base = {
      level: "Request",
      auditID: "exec-1",
      verb: "create",
      requestURI: "/api/v1/namespaces/default/pods/web/exec?command=sh",
      user: { username: "alice" },
      objectRef: { resource: "pods", subresource: "exec", namespace: "default", name: "web", apiVersion: "v1" },
      responseStatus: { code: 101 },
      stageTimestamp: at(0),
    };
    const alerts = ["ResponseStarted", "ResponseComplete"].flatMap((stage) => d.evaluate(AuditEventSchema.parse({ ...base, stage })));
    expect(alerts.map((a) => a.rule.id)).toEqual(["workload.exec_into_pod"]);
  });

  it("folds a storm of the same alert for one principal into one summary with a count", () => {
    const d = new Detector(rules, { stormWindowMs: 60_000 });
    const first = Array.from({ length: 10 }, (_, i) => d.evaluate(secretList(`a${i}`, i * 1000))).flat();
    const other = d.evaluate(secretList("b0", 5000, "trent"));
    expect(first.map((a) => a.kubernetes.audit.auditID)).toEqual([["a0"]]);
    expect(other).toHaveLength(1);
    // two windows later the storm's window is closed and summarised
    d.evaluate(secretList("c0", 180_000, "someone-else"));
    const summaries = d.expire();
    const mallory = summaries.find((s) => s.user?.name === "mallory");
    expect(mallory?.event.count).toBe(10);
    expect(mallory?.event.start).toBe(at(0));
    expect(mallory?.kubernetes.audit.auditID).toHaveLength(10);
    expect(summaries.find((s) => s.user?.name === "trent")).toBeUndefined(); // a single alert needs no summary

    // the same input gives the same summary id
    const again = new Detector(rules, { stormWindowMs: 60_000 });
    for (let i = 0; i < 10; i++) again.evaluate(secretList(`a${i}`, i * 1000));
    expect(again.flush().find((s) => s.user?.name === "mallory")?.event.id).toBe(mallory?.event.id);
  });
});

describe("Detector outcome filter", () => {
  it("judges a rule on failures only against requests that failed, and one on success only against refused ones as an attempt", async () => {
    const { mkdtempSync, writeFileSync } = await import("node:fs");
    const { tmpdir } = await import("node:os");
    const { join } = await import("node:path");
    const { SHIPPED_RULES_DIR } = await import("@k8s-audit/rules");
    const dir = mkdtempSync(join(tmpdir(), "outcome-rules-"));
    const rule = (id: string, outcome: string, severity: string) =>
      `id: ${id}\nname: ${id}\ndescription: any secret list\nseverity: ${severity}\nthreat: { tactics: [TA0006] }\noutcome: ${outcome}\ncondition: { field: objectRef.resource, equals: secrets }\ntests: { fire: [{ objectRef: { resource: secrets } }], quiet: [{ objectRef: { resource: pods } }] }\n`;
    writeFileSync(join(dir, "on-failure.yaml"), rule("site.on_failure", "failure", "low"));
    writeFileSync(join(dir, "on-success.yaml"), rule("site.on_success", "success", "high"));
    const detector = new Detector(loadRules([SHIPPED_RULES_DIR, dir]), { stormWindowMs: 0 });
    const fired = (code: number, id: string) =>
      detector
        .evaluate({ ...secretList(id, 0, "carol"), responseStatus: { code } })
        .map((a) => a.rule.id)
        .filter((r) => r.startsWith("site."));
    expect(fired(200, "ok-1")).toEqual(["site.on_success"]);
    expect(fired(403, "refused-1").sort()).toEqual(["site.on_failure", "site.on_success.attempt"]);
  });
});
