import { createRequire } from "node:module";

/**
 * Counting what reached Kafka and Elasticsearch, straight from the engines: a topic is read with kafkajs from offset 0
 * to the high-water mark of every partition (no consumer group: nothing is committed, nothing is skipped).
 */

// kafkajs is the core package's dependency; the kit reaches it through core (pnpm does not hoist it to the root).
const requireFromCore = createRequire(createRequire(import.meta.url).resolve("@k8s-audit/core"));

interface KafkaMessage {
  key: Buffer | null;
  value: Buffer | null;
  offset: string;
}
interface KafkaLike {
  admin(): {
    connect(): Promise<void>;
    disconnect(): Promise<void>;
    fetchTopicOffsets(topic: string): Promise<{ partition: number; high: string; low: string }[]>;
  };
  consumer(options: { groupId: string; maxBytesPerPartition?: number; maxWaitTimeInMs?: number }): {
    connect(): Promise<void>;
    disconnect(): Promise<void>;
    assign?: never;
    subscribe(o: { topic: string; fromBeginning: boolean }): Promise<void>;
    run(o: {
      autoCommit: boolean;
      eachBatch: (p: { batch: { partition: number; messages: KafkaMessage[] } }) => Promise<void>;
    }): Promise<void>;
  };
}
interface KafkaModule {
  Kafka: new (o: { clientId: string; brokers: string[]; logLevel: number }) => KafkaLike;
  logLevel: { NOTHING: number };
}

export interface TopicRecord {
  partition: number;
  offset: string;
  key: string | undefined;
  value: string;
}

/** Every record of `topic` up to the high-water marks taken now (a fresh group, nothing committed). */
export async function readWholeTopic(brokers: string, topic: string, timeoutMs = 60_000): Promise<TopicRecord[]> {
  // Loaded here, not on import: unit tests import the kit too and never read a topic.
  const { Kafka, logLevel } = requireFromCore("kafkajs") as KafkaModule;
  const kafka = new Kafka({ clientId: "faults-counter", brokers: brokers.split(","), logLevel: logLevel.NOTHING });
  const admin = kafka.admin();
  await admin.connect();
  const offsets = await admin.fetchTopicOffsets(topic).finally(() => admin.disconnect());
  const high = new Map(offsets.map((o) => [o.partition, BigInt(o.high)]));
  const remaining = new Set(offsets.filter((o) => BigInt(o.high) > BigInt(o.low)).map((o) => o.partition));
  const records: TopicRecord[] = [];
  if (remaining.size === 0) return records;
  const consumer = kafka.consumer({
    groupId: `faults-counter-${process.pid}-${Date.now()}-${Math.random()}`,
    maxBytesPerPartition: 8 << 20,
  });
  await consumer.connect();
  try {
    await consumer.subscribe({ topic, fromBeginning: true });
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`reading ${topic}: partitions ${[...remaining]} not read to the end in ${timeoutMs} ms`)),
        timeoutMs,
      );
      consumer
        .run({
          autoCommit: false,
          eachBatch: async ({ batch }) => {
            const end = high.get(batch.partition) ?? 0n;
            for (const m of batch.messages) {
              if (BigInt(m.offset) >= end) break;
              records.push({ partition: batch.partition, offset: m.offset, key: m.key?.toString(), value: m.value?.toString() ?? "" });
            }
            const last = batch.messages[batch.messages.length - 1];
            if (last && BigInt(last.offset) + 1n >= end) remaining.delete(batch.partition);
            if (remaining.size === 0) {
              clearTimeout(timer);
              resolve();
            }
          },
        })
        .catch(reject);
    });
  } finally {
    await consumer.disconnect();
  }
  return records;
}

/** Per auditID+stage (and cluster), how many records the events topic holds. */
export function countEvents(records: TopicRecord[]): Map<string, number> {
  const counts = new Map<string, number>();
  for (const r of records) {
    let e: { auditID?: unknown; stage?: unknown; cluster?: unknown };
    try {
      e = JSON.parse(r.value);
    } catch {
      continue;
    }
    if (typeof e?.auditID !== "string") continue;
    const k = `${e.auditID}|${String(e.stage)}`;
    counts.set(k, (counts.get(k) ?? 0) + 1);
  }
  return counts;
}

/** The alert documents of a data stream namespace: how many documents each alert id has. */
export async function alertDocCounts(esUrl: string, namespace: string): Promise<Map<string, number>> {
  const index = `logs-k8s_audit.alert-${namespace}`;
  await fetch(`${esUrl}/${index}/_refresh`, { method: "POST" }).catch(() => undefined);
  const res = await fetch(`${esUrl}/${index}/_search?ignore_unavailable=true`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ size: 10_000, _source: ["event.id"], query: { match_all: {} } }),
    signal: AbortSignal.timeout(30_000),
  });
  const counts = new Map<string, number>();
  if (res.status === 404) return counts;
  if (!res.ok) throw new Error(`searching ${index}: ${res.status} ${await res.text()}`);
  const body = (await res.json()) as { hits: { hits: { _id: string; _source?: { event?: { id?: string } } }[] } };
  for (const h of body.hits.hits) {
    const id = h._source?.event?.id ?? h._id;
    counts.set(id, (counts.get(id) ?? 0) + 1);
  }
  return counts;
}
