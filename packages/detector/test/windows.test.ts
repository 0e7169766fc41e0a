import type { Alert } from "@k8s-audit/core";
import { loadRulePack } from "@k8s-audit/rules";
import { parsedAuditEvent } from "@k8s-audit/testkit";
import { decodePartial, encodePartial, PartialCountCache, partitionOf, WindowEngine } from "@k8s-audit/windows";
import { describe, expect, it } from "vitest";
import { Detector } from "../src/index.js";

const pack = loadRulePack();
const T0 = Date.UTC(2026, 10, 28, 12, 0, 0);

/** A request by `user` at `ms` after T0, stamped by stageTimestamp alone, with no annotations; written for these tests. */
function req(user: string, ms: number, extra: Record<string, unknown> = {}) {
  return parsedAuditEvent({
    level: "Metadata",
    auditID: `${user}-${ms}-${JSON.stringify(extra).length}`,
    requestURI: "/api/v1/namespaces/app/configmaps",
    user: { username: user, groups: ["system:authenticated"] },
    sourceIPs: [`10.0.0.${user.length}`],
    userAgent: `${user}-client/1.0`,
    objectRef: { resource: "configmaps", namespace: "app", apiVersion: "v1" },
    responseStatus: { code: 200 },
    requestReceivedTimestamp: undefined,
    stageTimestamp: new Date(T0 + ms).toISOString(),
    annotations: undefined,
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

const rule = (id: string) => {
  const r = pack.windowRules.find((w) => w.definition.id === id);
  if (!r) throw new Error(`no timed rule ${id}`);
  return r;
};
const sortedByTime = (events: ReturnType<typeof req>[]) =>
  [...events].sort((a, b) => (a.stageTimestamp as string).localeCompare(b.stageTimestamp as string));

describe("scale-out: partial counts", () => {
  it("gives the same alerts when three readers count partials and one owner adds them up", () => {
    const controller = steady("system:serviceaccount:ops:reconciler", 900, 0, 10);
    const input = sortedByTime([...controller, ...steady("script-bot", 3000, 4, 5)]);
    const whole = run(input).map((a) => `${a.event.id}:${a.event.count}`);

    const readers = [0, 1, 2].map(() => new WindowEngine(pack.windowRules));
    const owner = new WindowEngine(pack.windowRules);
    const alerts: Alert[] = [];
    for (let i = 0; i < input.length; i += 500) {
      const batch = input.slice(i, i + 500);
      for (const [j, e] of batch.entries()) readers[j % 3]?.collect(e);
      // What the readers' ticks tell the owner: the stream's time, for warm-up.
      owner.noteStreamTime(Date.parse(batch[0]?.stageTimestamp as string));
      // Through the wire format, as on the internal topic.
      for (const r of readers) for (const p of r.drainPartials()) owner.merge(decodePartial(JSON.parse(encodePartial(p))));
      alerts.push(...owner.advance(Date.parse(batch[batch.length - 1]?.stageTimestamp as string)));
    }
    alerts.push(...owner.flush());
    expect(alerts.map((a) => `${a.event.id}:${a.event.count}`)).toEqual(whole);
  });
});

describe("scale-out: the reading side's cache", () => {
  it("sends one partial count per rule, key and window however many batches it spans, then one tick per source, with the offsets to commit", () => {
    const cache = new PartialCountCache([rule("flood.principal")], { sources: 2, targets: 3 });
    const events = steady("script-bot", 600, 0, 1);
    for (let b = 0; b < 6; b++) {
      for (const e of events.slice(b * 100, b * 100 + 100)) cache.count(b % 2, e, Date.parse(e.stageTimestamp as string));
      cache.batchDone(b % 2, String(b * 100 + 100));
    }
    const { records, offsets } = cache.drain();
    const parsed = records.map((r) => ({ partition: r.partition, value: JSON.parse(r.value) }));
    const partials = parsed.filter((r) => r.value.partials).flatMap((r) => r.value.partials.map(decodePartial));
    expect(partials.map((p) => [p.rule, p.key, p.bucket.count])).toEqual([["flood.principal", "prod|script-bot", 600]]);
    // Addressed to the partition that owns the key, before the ticks.
    expect(parsed[0]?.partition).toBe(partitionOf("flood.principal\u0000prod|script-bot", 3));
    const ticks = parsed.filter((r) => r.value.tick).map((r) => [r.partition, r.value.tick.source]);
    expect(ticks).toEqual([
      [0, 0],
      [1, 0],
      [2, 0],
      [0, 1],
      [1, 1],
      [2, 1],
    ]);
    expect(offsets).toEqual([
      { partition: 0, offset: "500" },
      { partition: 1, offset: "600" },
    ]);
    expect(cache.pending).toBe(false);
  });
});

describe("bounded memory", () => {
  it("counts keys beyond the cap in a sketch and still flags a heavy hitter hidden in the tail", () => {
    const engine = new WindowEngine([rule("flood.source_ip")], { maxKeysPerWindow: 50, maxTrackedKeys: 100 });
    const events = [];
    // Five minutes of 200 distinct addresses a minute, then a runaway address arriving after the window is full.
    for (let m = 0; m < 5; m++)
      for (let i = 0; i < 200; i++) events.push(req(`u${i}`, m * 60_000 + i * 100, { sourceIPs: [`10.9.${m}.${i}`] }));
    for (let i = 0; i < 1500; i++) events.push(req("bot", 4 * 60_000 + 30_000 + i * 10, { sourceIPs: ["198.51.100.1"] }));
    const alerts = [...sortedByTime(events).flatMap((e) => engine.offer(e)), ...engine.flush()];
    expect(alerts.map((a) => a.labels?.window_key)).toEqual(["prod|198.51.100.1"]);
    expect(alerts[0]?.event.count).toBeGreaterThanOrEqual(1500);
    expect(engine.stats.promotedKeys).toBe(1);
    expect(engine.stats.sketchedEvents).toBeGreaterThan(0);
    expect(engine.stats.evictedKeys).toBeGreaterThan(0);
  });
});

describe("sequences", () => {
  const binding = (user: string, ms: number) =>
    req(user, ms, {
      verb: "create",
      objectRef: { apiGroup: "rbac.authorization.k8s.io", resource: "clusterrolebindings", name: "x" },
      responseStatus: { code: 201 },
      auditID: `${user}-binding-${ms}`,
    });
  const deployment = (user: string, ms: number) =>
    req(user, ms, {
      verb: "create",
      objectRef: { apiGroup: "apps", resource: "deployments", namespace: "prod", name: "y" },
      responseStatus: { code: 201 },
      auditID: `${user}-deploy-${ms}`,
    });
  const traffic = steady("someone", 10, 0, 20);

  it("flags an RBAC change then a workload by the same principal, in event-time order even when they arrive swapped", () => {
    const ordered = sortedByTime([...traffic, binding("mallory", 60_000), deployment("mallory", 90_000)]);
    // The deployment's event arrives before the binding's (a concurrent batch), 30 s apart in event time.
    const swapped = [...ordered];
    const b = swapped.findIndex((e) => e.auditID.includes("binding"));
    const d = swapped.findIndex((e) => e.auditID.includes("deploy"));
    [swapped[b], swapped[d]] = [swapped[d] as never, swapped[b] as never];
    for (const input of [ordered, swapped]) {
      const alerts = byRule(run(input), "sequence.rbac_change_then_workload");
      expect(alerts.map((a) => [a.labels?.window_key, a.event.start, a.kubernetes.audit.auditID])).toEqual([
        ["prod|mallory", new Date(T0 + 60_000).toISOString(), ["mallory-binding-60000", "mallory-deploy-90000"]],
      ]);
    }
  });

  it("stays quiet for the reverse order, for different principals and beyond the time limit", () => {
    const input = sortedByTime([
      ...traffic,
      deployment("a", 60_000),
      binding("a", 90_000),
      binding("b", 60_000),
      deployment("c", 90_000),
      binding("d", 60_000),
      deployment("d", 60_000 + 11 * 60_000),
    ]);
    expect(byRule(run(input), "sequence.rbac_change_then_workload")).toEqual([]);
  });
});

describe("audit stream silence", () => {
  it("raises the same alert whether the clock notices the silence live or the gap is found in archived events", () => {
    // The wall clock during the live run: the first events' time, as it would be.
    let now = T0;
    const live = new WindowEngine([rule("audit.stream_silence")], { clock: () => now });
    const before = steady("someone", 60, 0, 3);
    for (const e of before) live.offer(e);
    now += 200_000;
    expect(live.idle(now)).toEqual([]);
    now += 200_000;
    const noticed = live.idle(now);
    expect(noticed.map((a) => a.labels?.window_key)).toEqual(["prod"]);
    expect(live.idle(now + 60_000)).toEqual([]); // once per silence

    const after = steady("someone", 60, 12, 14);
    for (const e of after) live.offer(e);
    const archived = new WindowEngine([rule("audit.stream_silence")]);
    const found = [...[...before, ...after].flatMap((e) => archived.offer(e)), ...archived.flush()];
    expect(found.map((a) => a.event.id)).toEqual(noticed.map((a) => a.event.id));
    expect(found[0]?.event.start).toBe(before[before.length - 1]?.stageTimestamp);
    // Live, the resumed stream does not report the same silence again.
    expect(live.flush()).toEqual([]);
  });
});

describe("API Priority and Fairness throttling", () => {
  it("flags a cluster whose share of 429 responses surges, not one with a few", () => {
    const ok = steady("someone", 1000, 0, 3);
    const throttled = steady("busy", 200, 1, 2, { responseStatus: { code: 429 } });
    const few = steady("busy2", 20, 2, 3, { responseStatus: { code: 429 } });
    const alerts = byRule(run(sortedByTime([...ok, ...throttled, ...few])), "apf.throttling_surge");
    expect(alerts.map((a) => [a.event.start, a.event.count, a.labels?.share])).toEqual([
      [new Date(T0 + 60_000).toISOString(), 200, (200 / 1200).toFixed(4)],
    ]);
  });
});
