import { type Alert, AuditEventSchema } from "@k8s-audit/core";
import { describe, expect, it } from "vitest";
import { Detector, loadRulePack } from "../src/index.js";

const pack = loadRulePack();
const T0 = Date.UTC(2026, 10, 28, 12, 0, 0);

/** A request by `user` at `ms` after T0; written for these tests. */
function req(user: string, ms: number, extra: Record<string, unknown> = {}) {
  return AuditEventSchema.parse({
    level: "Metadata",
    auditID: `${user}-${ms}-${JSON.stringify(extra).length}`,
    stage: "ResponseComplete",
    requestURI: "/api/v1/namespaces/app/configmaps",
    verb: "list",
    user: { username: user, groups: ["system:authenticated"] },
    sourceIPs: [`10.0.0.${user.length}`],
    userAgent: `${user}-client/1.0`,
    objectRef: { resource: "configmaps", namespace: "app", apiVersion: "v1" },
    responseStatus: { code: 200 },
    stageTimestamp: new Date(T0 + ms).toISOString(),
    cluster: "prod",
    ...extra,
  });
}

/** `perMinute` evenly spaced requests by `user` for each minute in [fromMin, toMin). */
function steady(user: string, perMinute: number, fromMin: number, toMin: number, extra: Record<string, unknown> = {}) {
  const out = [];
  for (let m = fromMin; m < toMin; m++)
    for (let i = 0; i < perMinute; i++) out.push(req(user, m * 60_000 + Math.floor((i * 60_000) / perMinute), extra));
  return out;
}

function run(events: ReturnType<typeof req>[]): Alert[] {
  const detector = new Detector(pack.rules, { windowRules: pack.windowRules, stormWindowMs: 0 });
  return [...events.flatMap((e) => detector.evaluate(e)), ...detector.flush()].filter((a) => a.event.start !== undefined);
}

const byRule = (alerts: Alert[], id: string) => alerts.filter((a) => a.rule.id === id);

describe("windowed detections", () => {
  // A steadily busy controller for 10 minutes; after 4 minutes of learning a runaway client appears.
  const controller = steady("system:serviceaccount:ops:reconciler", 900, 0, 10);
  const runaway = steady("script-bot", 3000, 4, 5);
  const input = [...controller, ...runaway].sort((a, b) => (a.stageTimestamp as string).localeCompare(b.stageTimestamp as string));

  it("flags a runaway client within its first window and leaves a steady high-volume controller quiet", () => {
    const alerts = byRule(run(input), "flood.principal");
    expect(alerts.map((a) => a.labels?.window_key)).toEqual(["prod|script-bot"]);
    const a = alerts[0] as Alert;
    expect(a.event.count).toBe(3000);
    expect(a.event.start).toBe(new Date(T0 + 4 * 60_000).toISOString());
    expect(a.labels?.top_verbs).toBe("list=3000");
    expect(a.kubernetes.audit.auditID.length).toBeGreaterThan(0);
  });

  it("gives identical alerts for a shuffled input (out of order within a window)", () => {
    // Deterministic shuffle of neighbours: every event moves by less than one window.
    const shuffled = [...input];
    for (let i = 0; i + 7 < shuffled.length; i += 7) [shuffled[i], shuffled[i + 7]] = [shuffled[i + 7] as never, shuffled[i] as never];
    const ids = (x: Alert[]) => x.map((a) => `${a.event.id}:${a.event.count}`).sort();
    expect(ids(run(shuffled))).toEqual(ids(run(input)));
  });

  it("gives the same alert ids when the same events are replayed again", () => {
    expect(run(input).map((a) => a.event.id)).toEqual(run(input).map((a) => a.event.id));
  });

  it("flags a burst of 401s from one address, and enumeration by 403s across resource types", () => {
    const unauth = Array.from({ length: 25 }, (_, i) =>
      req("anon", i * 1000, { user: {}, sourceIPs: ["203.0.113.66"], responseStatus: { code: 401 }, auditID: `u-${i}` }),
    );
    const resources = ["secrets", "pods", "nodes", "configmaps", "roles", "clusterroles", "deployments", "daemonsets", "services"];
    const forbidden = resources.map((r, i) =>
      req("probe", i * 1000, { objectRef: { resource: r }, responseStatus: { code: 403 }, auditID: `f-${i}` }),
    );
    const alerts = run([...unauth, ...forbidden]);
    expect(byRule(alerts, "auth.unauthenticated_burst").map((a) => [a.labels?.window_key, a.event.count])).toEqual([
      ["prod|203.0.113.66", 25],
    ]);
    expect(byRule(alerts, "auth.forbidden_enumeration").map((a) => a.event.count)).toEqual([9]);
    expect(byRule(alerts, "auth.forbidden_burst")).toEqual([]); // 9 < 20
  });

  it("flags many distinct secrets read by one principal, not the same secret read many times", () => {
    const secret = (user: string, name: string, i: number) =>
      req(user, i * 500, { verb: "get", objectRef: { resource: "secrets", namespace: "prod", name }, auditID: `${user}-s-${i}` });
    const harvest = Array.from({ length: 25 }, (_, i) => secret("harvester", `db-${i}`, i));
    const rereads = Array.from({ length: 100 }, (_, i) => secret("app", "db-0", i));
    expect(byRule(run([...harvest, ...rereads]), "secret.read_burst").map((a) => [a.labels?.window_key, a.event.count])).toEqual([
      ["prod|harvester", 25],
    ]);
  });
});
