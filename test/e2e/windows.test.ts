import type { Alert, AuditEvent } from "@k8s-audit/core";
import { loadDetection } from "@k8s-audit/rules";
import { parsedAuditEvent } from "@k8s-audit/testkit";
import { afterAll, describe, expect, inject, it } from "vitest";
import { type Deployment, deploy } from "../support/deployment.js";

/**
 * Windowed detections on the real Kafka, deployed as in production: detector instances read the events topic and
 * publish partial counts to the internal windows topic; window-stage instances own its partitions and raise alerts.
 */
const T0 = Date.UTC(2026, 10, 28, 12, 0, 0);
const MINUTE = 60_000;
const pack = loadDetection();
const timedRuleIds = new Set(pack.windowRules.map((r) => r.definition.id));

function request(user: string | undefined, ms: number, n: number, overrides: Record<string, unknown> = {}): AuditEvent {
  return parsedAuditEvent({
    auditID: `${user ?? "anonymous"}-${ms}-${n}`,
    level: "Metadata",
    user: user ? { username: user, groups: ["system:authenticated"] } : {},
    userAgent: `${user ?? "curl"}/1.0`,
    sourceIPs: [user === "script-bot" ? "10.1.0.99" : user ? "10.1.0.7" : "203.0.113.66"],
    requestReceivedTimestamp: new Date(T0 + ms - 5).toISOString(),
    stageTimestamp: new Date(T0 + ms).toISOString(),
    ...overrides,
    cluster: "prod",
  });
}

/** `perMinute` evenly spaced requests for each minute in [fromMin, toMin). */
function steady(user: string | undefined, perMinute: number, fromMin: number, toMin: number, overrides: Record<string, unknown> = {}) {
  const out: AuditEvent[] = [];
  for (let m = fromMin; m < toMin; m++)
    for (let i = 0; i < perMinute; i++) out.push(request(user, m * MINUTE + Math.floor((i * MINUTE) / perMinute), i, overrides));
  return out;
}

/**
 * Ten minutes of a steadily busy controller; in minute 4 a runaway client; in minute 6 a burst of unauthenticated
 * requests from one address. Written for this test.
 */
const traffic = [
  ...steady("system:serviceaccount:ops:reconciler", 900, 0, 10),
  ...steady("script-bot", 3000, 4, 5),
  ...steady(undefined, 25, 6, 7, { responseStatus: { metadata: {}, code: 401 }, annotations: {} }),
].sort((a, b) => (a.stageTimestamp as string).localeCompare(b.stageTimestamp as string) || a.auditID.localeCompare(b.auditID));

const timed = (alerts: Alert[]) => alerts.filter((a) => timedRuleIds.has(a.rule.id));
/** Every windowed result: timed-rule alerts and storm summaries (a per-event rule's alerts for one principal, folded). */
const summary = (alerts: Alert[]) =>
  [
    ...new Set(
      alerts
        .filter((a) => a.event.start !== undefined)
        .map((a) => `${a.rule.id} ${a.labels?.window_key ?? a.user?.name} ${a.event.start} ${a.event.id} ${a.event.count}`),
    ),
  ].sort();
const hasBurst = (alerts: Alert[]) => alerts.some((a) => a.rule.id === "auth.unauthenticated_burst");

describe("windowed detections on Kafka", () => {
  const brokers = inject("kafkaBrokers");
  const deployments: Deployment[] = [];
  afterAll(async () => {
    for (const d of deployments) await d.stop();
  });
  let single: Alert[] = [];

  it("flags a runaway client within one window and a 401 burst from one address, not a steady controller; a replay of the same events adds no alert ids", async () => {
    const d = await deploy(brokers, 1);
    deployments.push(d);
    await d.publish(traffic);
    single = await d.alerts(hasBurst);

    const floods = timed(single).filter((a) => a.rule.id === "flood.principal");
    expect(floods.map((a) => a.labels?.window_key)).toEqual(["prod|script-bot"]);
    const flood = floods[0] as Alert;
    // Within one window: the alert is for the minute the runaway started, with its count and top contributors.
    expect(flood.event.start).toBe(new Date(T0 + 4 * MINUTE).toISOString());
    expect(flood.event.end).toBe(new Date(T0 + 5 * MINUTE).toISOString());
    expect(flood.event.count).toBe(3000);
    // Contributors are exact for a partial count's first events and sampled after: the proportions are what matter.
    const contribution = (label: string | undefined, name: string) => Number(label?.match(new RegExp(`^${name}=(\\d+)$`))?.[1]);
    expect(contribution(flood.labels?.top_verbs, "list")).toBeCloseTo(3000, -2);
    expect(contribution(flood.labels?.top_source_ips, "10\\.1\\.0\\.99")).toBeCloseTo(3000, -2);
    expect(Number(flood.labels?.baseline)).toBe(0);

    const bursts = timed(single).filter((a) => a.rule.id === "auth.unauthenticated_burst");
    expect(bursts.map((a) => [a.labels?.window_key, a.event.count])).toEqual([["prod|203.0.113.66", 25]]);
    expect(timed(single).some((a) => a.labels?.window_key?.includes("reconciler"))).toBe(false);

    // The same events again (an investigator replays the archive into the live topic): nothing new.
    const before = new Set(single.map((a) => a.event.id));
    await d.publish(traffic);
    const after = await d.alerts(() => true);
    expect(new Set(after.map((a) => a.event.id))).toEqual(before);
  }, 180_000);

  it("gives identical alerts for a shuffled input order", async () => {
    expect(single.length).toBeGreaterThan(0);
    // Neighbours swapped across up to 10 s: out of order within a window, as concurrent webhook batches arrive.
    const shuffled = [...traffic];
    for (let i = 0; i + 97 < shuffled.length; i += 13) {
      [shuffled[i], shuffled[i + 97]] = [shuffled[i + 97] as AuditEvent, shuffled[i] as AuditEvent];
    }
    const d = await deploy(brokers, 1);
    deployments.push(d);
    await d.publish(shuffled);
    expect(summary(await d.alerts(hasBurst))).toEqual(summary(single));
  }, 180_000);

  it("gives identical alert ids with 3 detector instances as with 1", async () => {
    expect(single.length).toBeGreaterThan(0);
    const d = await deploy(brokers, 3);
    deployments.push(d);
    await d.publish(traffic);
    expect(summary(await d.alerts(hasBurst))).toEqual(summary(single));
  }, 180_000);

  it("loses no open window when the window stage restarts in the middle of a burst", async () => {
    expect(single.length).toBeGreaterThan(0);
    const d = await deploy(brokers, 1);
    deployments.push(d);
    // Up to the middle of the 401 burst (12 s into minute 6), then a crash and restart of the window stage.
    const cut = T0 + 6 * MINUTE + 12_000;
    await d.publish(traffic.filter((e) => Date.parse(e.stageTimestamp as string) < cut));
    await new Promise((r) => setTimeout(r, 4_000));
    await d.restartWindowStage();
    await d.publish(traffic.filter((e) => Date.parse(e.stageTimestamp as string) >= cut));
    const alerts = await d.alerts(hasBurst);
    expect(
      timed(alerts)
        .filter((a) => a.rule.id === "auth.unauthenticated_burst")
        .map((a) => a.event.count),
    ).toEqual([25]);
    expect(summary(alerts)).toEqual(summary(single));
  }, 180_000);

  it("still flags cluster B's 403 burst after one far-future event from cluster A (3 detector instances)", async () => {
    const d = await deploy(brokers, 3);
    deployments.push(d);
    const forbidden = (cluster: string, user: string, i: number, at: number) =>
      parsedAuditEvent({
        auditID: `${cluster}-${user}-${i}`,
        level: "Metadata",
        verb: "get",
        requestURI: "/api/v1/namespaces/prod/secrets/db",
        objectRef: { resource: "secrets", namespace: "prod", name: "db", apiVersion: "v1" },
        user: { username: user, groups: ["system:authenticated"] },
        responseStatus: { metadata: {}, code: 403 },
        annotations: { "authorization.k8s.io/decision": "forbid", "authorization.k8s.io/reason": "" },
        requestReceivedTimestamp: new Date(at - 5).toISOString(),
        stageTimestamp: new Date(at).toISOString(),
        cluster,
      });
    // A broken (or hostile) clock in cluster A: one event stamped in 2100, read first.
    await d.publish([forbidden("cluster-a", "node-clock", 0, Date.UTC(2100, 0, 1))]);
    await new Promise((r) => setTimeout(r, 2_000));
    await d.publish(Array.from({ length: 25 }, (_, i) => forbidden("cluster-b", "mallory", i, T0 + 2 * MINUTE + i * 1000)));
    // Traffic goes on, spread over every partition, so event time passes the burst's window.
    await d.publish(
      Array.from({ length: 30 }, (_, i) =>
        parsedAuditEvent({ stageTimestamp: new Date(T0 + 5 * MINUTE + i * 1000).toISOString(), cluster: "cluster-b" }),
      ),
    );
    const flagged = (alerts: Alert[]) =>
      alerts.some((a) => a.rule.id === "auth.forbidden_burst" && a.labels?.window_key === "cluster-b|mallory");
    const alerts = await d.alerts(flagged);
    expect(
      timed(alerts)
        .filter((a) => a.rule.id === "auth.forbidden_burst")
        .map((a) => [a.labels?.window_key, a.event.count]),
    ).toEqual([["cluster-b|mallory", 25]]);
  }, 180_000);
});
