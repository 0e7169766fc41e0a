import { randomUUID } from "node:crypto";
import { type Alert, type AuditEvent, KafkaBus, type Subscription, type Topics } from "@k8s-audit/core";
import { Detector, startDetectorService, startWindowService } from "@k8s-audit/detector";
import { type DetectionPack, loadDetection } from "@k8s-audit/rules";
import { quietLogger, uniqueTopics } from "@k8s-audit/testkit";
import { startTestIngest } from "./ingest.js";

/**
 * The detection stages deployed as in production on the real Kafka: `instances` detector + window-stage pairs on fresh
 * topics, each on its own connection: detectors read the events topic and publish partial counts and per-event alerts
 * to the internal windows topic; window stages own its partitions, fold storms and raise the timed rules' alerts.
 */
export interface Deployment {
  topics: Topics;
  /** Straight onto the events topic (keyed `<cluster>/<auditID>`, as the ingest keys them). */
  publish(events: AuditEvent[]): Promise<void>;
  /** Alerts on the alerts topic once `ready` holds and nothing new arrived for a few seconds. */
  alerts(ready: (alerts: Alert[]) => boolean): Promise<Alert[]>;
  /** Stops the (first) window stage and starts a new one in its consumer group, as a crash and restart would. */
  restartWindowStage(): Promise<void>;
  stop(): Promise<void>;
}

/** `instances` detector + window-stage pairs on fresh topics, each on its own connection, waiting for stable groups. */
export async function deploy(brokers: string, instances: number, pack: DetectionPack = loadDetection()): Promise<Deployment> {
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
        events.map((e) => ({ key: `${e.cluster ?? "default"}/${e.auditID}`, value: JSON.stringify(e) })),
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

/** A deployment with the real ingest in front, as apiservers post to it; `url` is the cluster's webhook path. */
export async function deployBehindIngest(brokers: string, instances: number, pack: DetectionPack, cluster: string) {
  const deployment = await deploy(brokers, instances, pack);
  const ingest = await startTestIngest(brokers, { topics: deployment.topics });
  return {
    deployment,
    url: `${ingest.url}/${cluster}`,
    stop: async () => {
      await ingest.stop();
      await deployment.stop();
    },
  };
}
