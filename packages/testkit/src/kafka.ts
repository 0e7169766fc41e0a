import { randomUUID } from "node:crypto";
import { type ConsumedMessage, createLogger, KafkaBus, type Topics } from "@k8s-audit/core";

/** Topic names unique to one test, so tests never see each other's records. */
export function uniqueTopics(prefix: string): Topics {
  const id = randomUUID().slice(0, 8);
  return { events: `${prefix}-${id}.events`, alerts: `${prefix}-${id}.alerts`, deadLetter: `${prefix}-${id}.deadletter` };
}

export const quietLogger = createLogger({ level: process.env.TEST_LOG_LEVEL ?? "warn" });

/**
 * Reads a topic from the beginning with a fresh consumer group until `count` records arrived, or until `count` says
 * enough has been read (or the timeout).
 */
export async function readTopic(
  brokers: string,
  topic: string,
  count: number | ((seen: ConsumedMessage[]) => boolean),
  timeoutMs = 30_000,
): Promise<ConsumedMessage[]> {
  const enough = typeof count === "number" ? (seen: ConsumedMessage[]) => seen.length >= count : count;
  const bus = new KafkaBus({ brokers: brokers.split(","), clientId: "test-reader", logger: quietLogger });
  const seen: ConsumedMessage[] = [];
  let done: () => void = () => {};
  const finished = new Promise<void>((resolve) => {
    done = resolve;
  });
  const sub = await bus.consume({
    topic,
    groupId: `test-reader-${randomUUID()}`,
    fromBeginning: true,
    eachBatch: async (messages) => {
      seen.push(...messages);
      if (enough(seen)) done();
    },
  });
  const timer = setTimeout(done, timeoutMs);
  await finished;
  clearTimeout(timer);
  await sub.stop();
  await bus.close();
  return seen;
}

/**
 * The auditIDs on an events topic, read until every wanted one is seen (or the timeout). Counting records is not
 * enough after an outage: a produce that timed out and was retried leaves duplicates, which fill a count early.
 */
export async function storedAuditIDs(brokers: string, topic: string, wanted: readonly string[], timeoutMs = 30_000): Promise<Set<string>> {
  const ids = new Set<string>();
  let read = 0;
  await readTopic(
    brokers,
    topic,
    (seen) => {
      for (; read < seen.length; read++) ids.add(JSON.parse((seen[read] as ConsumedMessage).value).auditID);
      return wanted.every((id) => ids.has(id));
    },
    timeoutMs,
  );
  return ids;
}
