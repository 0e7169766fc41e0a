import { randomUUID } from "node:crypto";
import { type Alert, type AuditEvent, AuditEventSchema, KafkaBus, type Subscription, type Topics } from "@k8s-audit/core";
import { Detector, loadDetection, startDetectorService, startWindowService } from "@k8s-audit/detector";
import { afterAll, describe, expect, inject, it } from "vitest";
import { auditEvent } from "../support/events.js";
import { quietLogger, uniqueTopics } from "../support/kafka.js";

/**
 * Windowed detections on the real Kafka, deployed as in production: detector instances read the events topic and
 * publish partial counts to the internal windows topic; window-stage instances own its partitions and raise alerts.
 */
const T0 = Date.UTC(2026, 10, 28, 12, 0, 0);
const MINUTE = 60_000;
const pack = loadDetection();
const timedRuleIds = new Set(pack.windowRules.map((r) => r.definition.id));

function request(user: string | undefined, ms: number, n: number, overrides: Record<string, unknown> = {}): AuditEvent {
  return AuditEventSchema.parse({
    ...auditEvent({
      auditID: `${user ?? "anonymous"}-${ms}-${n}`,
      level: "Metadata",
      user: user ? { username: user, groups: ["system:authenticated"] } : {},
      userAgent: `${user ?? "curl"}/1.0`,
      sourceIPs: [user === "script-bot" ? "10.1.0.99" : user ? "10.1.0.7" : "203.0.113.66"],
      requestReceivedTimestamp: new Date(T0 + ms - 5).toISOString(),
      stageTimestamp: new Date(T0 + ms).toISOString(),
      ...overrides,
    }),
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

interface Deployment {
  topics: Topics;
  publish(events: AuditEvent[]): Promise<void>;
  /** Alerts on the alerts topic once `ready` holds and nothing new arrived for a few seconds. */
  alerts(ready: (alerts: Alert[]) => boolean): Promise<Alert[]>;
  /** Stops the (first) window stage and starts a new one in its consumer group, as a crash and restart would. */
  restartWindowStage(): Promise<void>;
  stop(): Promise<void>;
}

/** `instances` detector + window-stage pairs on fresh topics, each on its own connection, waiting for stable groups. */
async function deploy(brokers: string, instances: number): Promise<Deployment> {
  const base = uniqueTopics("e2e-windows");
  const topics: Topics = { ...base, windows: base.events.replace(/\.events$/, ".windows") };
  const id = randomUUID().slice(0, 8);
  const buses: KafkaBus[] = [];
  const subscriptions: Subscription[] = [];
  const owned = { detector: new Map<number, number[]>(), windows: new Map<number, number[]>() };
  const bus = () => {
    const b = new KafkaBus({ brokers: brokers.split(","), clientId: `e2e-windows-${id}`, partitions: 3, logger: quietLogger });
    buses.push(b);
    return b;
  };
  await bus().ensureTopics([topics.events, topics.alerts, topics.deadLetter, topics.windows as string]);
  const windowStage = (b: KafkaBus, i: number) =>
    startWindowService({
      bus: b,
      topics,
      windowRules: pack.windowRules,
      logger: quietLogger,
      groupId: `windows-${id}`,
      onAssignment: (p) => owned.windows.set(i, p),
    });
  const windowStages: Subscription[] = [];
  for (let i = 0; i < instances; i++) {
    const b = bus();
    const detector = new Detector(pack.rules, { stormWindowMs: 0 });
    subscriptions.push(
      await startDetectorService({
        bus: b,
        topics,
        detector,
        logger: quietLogger,
        groupId: `detector-${id}`,
        repartition: { windowRules: pack.windowRules },
        onAssignment: (p) => owned.detector.set(i, p),
      }),
    );
    windowStages.push(await windowStage(b, i));
  }
  // Each partition owned by exactly one instance and every instance owning some: the groups have settled.
  const settled = (m: Map<number, number[]>) => {
    const all = [...m.values()].flat().sort();
    return m.size === instances && [...m.values()].every((p) => p.length > 0) && all.join() === "0,1,2";
  };
  const settle = async () => {
    const deadline = Date.now() + 60_000;
    while (!(settled(owned.detector) && settled(owned.windows))) {
      if (Date.now() > deadline) throw new Error(`groups did not settle: ${JSON.stringify([...owned.detector, ...owned.windows])}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  };
  await settle();

  const reader = bus();
  const seen: Alert[] = [];
  subscriptions.push(
    await reader.consume({
      topic: topics.alerts,
      groupId: `reader-${id}`,
      fromBeginning: true,
      eachBatch: async (messages) => {
        for (const m of messages) seen.push(JSON.parse(m.value) as Alert);
      },
    }),
  );
  return {
    topics,
    publish: (events) =>
      reader.publish(
        topics.events,
        events.map((e) => ({ key: `prod/${e.auditID}`, value: JSON.stringify(e) })),
      ),
    alerts: async (ready) => {
      const until = Date.now() + 90_000;
      while (!ready(seen) && Date.now() < until) await new Promise((r) => setTimeout(r, 250));
      let count = -1;
      while (count !== seen.length) {
        count = seen.length;
        await new Promise((r) => setTimeout(r, 3_000));
      }
      return [...seen];
    },
    restartWindowStage: async () => {
      await windowStages[0]?.stop();
      owned.windows.delete(0);
      windowStages[0] = await windowStage(bus(), 0);
      await settle();
    },
    stop: async () => {
      for (const s of [...windowStages, ...subscriptions]) await s.stop();
      for (const b of buses) await b.close();
    },
  };
}

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
});
