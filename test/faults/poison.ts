import { KafkaBus } from "@k8s-audit/core";
import { quietLogger, readWholeTopic } from "@k8s-audit/testkit";
import type { Pipeline } from "./harness.js";

/**
 * Poison on every topic, as a buggy producer, a foreign tool or a disk error would leave it: bytes that are not JSON,
 * JSON of the wrong shape, and records that look almost right. Each consumer must dead-letter or skip them with a log
 * line and keep going. Every value carries a marker so the dead-letter topic can be searched for it.
 */
export async function poisonEveryTopic(p: Pipeline) {
  const marker = (topic: string, i: number) => `poison-${topic}-${i}`;
  const garbage = (m: string) => [
    `\u0000\u0001\ufffd${m} not json {{{`,
    JSON.stringify({ kind: "Event", auditID: 5, stage: { m } }),
    JSON.stringify([m, 1, 2, 3]),
    JSON.stringify(m),
    JSON.stringify({ marker: m, nested: JSON.parse(`${"[".repeat(500)}${"]".repeat(500)}`) }),
  ];
  const windowsPoison = (m: string) => [
    `${m} \u0000 not json`,
    JSON.stringify({ tick: { source: m, sources: "x", from: "y" } }),
    JSON.stringify({ tick: null, marker: m }),
    JSON.stringify({ partials: [{ bogus: m }] }),
    JSON.stringify({ partials: m }),
    JSON.stringify({ alerts: [{ nope: m }] }),
    JSON.stringify({ alerts: m }),
  ];
  const bus = new KafkaBus({ brokers: p.options.brokers.split(","), clientId: "faults-poison", logger: quietLogger });
  const events = garbage(marker("events", 0));
  const alerts = [...garbage(marker("alerts", 0)), JSON.stringify({ rule: { id: marker("alerts", 1) }, event: { id: 7 } })];
  const windows = windowsPoison(marker("windows", 0));
  const deadLetters = garbage(marker("deadletter", 0));
  const keyed = (values: string[], key?: string) => values.map((value, i) => ({ key: key ?? `poison-${i}`, value }));
  await bus.publish(p.topics.events, keyed(events));
  await bus.publish(p.topics.alerts, keyed(alerts));
  // One record per windows partition each, so whichever instance owns it meets one.
  for (let i = 0; i < 3; i++) await bus.publish(p.topics.windows, keyed(windows, `poison-partition-${i}`));
  await bus.publish(p.topics.deadLetter, keyed(deadLetters));
  await bus.close();
  return {
    events: events.length,
    alerts: alerts.length,
    windows: windows.length,
    /** How many of the events, alerts and windows poison records reached the dead-letter topic (as they were). */
    deadLettered: async () => {
      const records = await readWholeTopic(p.options.brokers, p.topics.deadLetter);
      const values = new Set(records.map((r) => r.value));
      return {
        events: events.filter((v) => values.has(v)).length,
        alerts: alerts.filter((v) => values.has(v)).length,
        windows: windows.filter((v) => values.has(v)).length,
      };
    },
  };
}
