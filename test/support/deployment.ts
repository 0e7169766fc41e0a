import { randomUUID } from "node:crypto";
import {
  type Alert,
  type AuditEvent,
  KafkaBus,
  loadConfig,
  type RunningStages,
  runStages,
  type Stage,
  type Subscription,
  type Topics,
} from "@k8s-audit/core";
import { DetectorStage, WindowStage } from "@k8s-audit/detector";
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

/**
 * `instances` detector + window-stage pairs on fresh topics, each started through the runner (runStages) on its own
 * Kafka connection, as `k8s-audit detect --only events|windows` processes would be; waits for stable groups.
 */
export async function deploy(brokers: string, instances: number, pack: DetectionPack = loadDetection()): Promise<Deployment> {
  const base = uniqueTopics("e2e-windows");
  const topics: Topics = { ...base, windows: base.events.replace(/\.events$/, ".windows") };
  const id = randomUUID().slice(0, 8);
  const config = loadConfig({ KAFKA_BROKERS: brokers, KAFKA_PARTITIONS: "3", K8S_AUDIT_CONSUMER_GROUP_PREFIX: `e2e-${id}` });
  const running: RunningStages[] = [];
  const owned = { detector: new Map<number, number[]>(), windows: new Map<number, number[]>() };
  const bus = () => new KafkaBus({ brokers: brokers.split(","), clientId: `e2e-windows-${id}`, partitions: 3, logger: quietLogger });
  // Runners close the buses they are given; this one (topics, publishing, reading alerts) is closed by stop().
  const reader = bus();
  await reader.ensureTopics([topics.events, topics.alerts, topics.deadLetter, topics.windows as string]);
  const run = (stage: Stage) => runStages([stage], { bus: bus(), topics, config, logger: quietLogger });
  const windowStage = (i: number) => run(new WindowStage({ pack, onAssignment: (p) => owned.windows.set(i, p) }));
  const windowStages: RunningStages[] = [];
  for (let i = 0; i < instances; i++) {
    running.push(await run(new DetectorStage({ pack, onAssignment: (p) => owned.detector.set(i, p) })));
    windowStages.push(await windowStage(i));
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

  const seen: Alert[] = [];
  const subscriptions: Subscription[] = [
    await reader.consume({
      topic: topics.alerts,
      groupId: `reader-${id}`,
      fromBeginning: true,
      eachBatch: async (messages) => {
        for (const m of messages) seen.push(JSON.parse(m.value) as Alert);
      },
    }),
  ];
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
      windowStages[0] = await windowStage(0);
      await settle();
    },
    stop: async () => {
      for (const r of [...windowStages, ...running]) await r.stop();
      for (const s of subscriptions) await s.stop();
      await reader.close();
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
