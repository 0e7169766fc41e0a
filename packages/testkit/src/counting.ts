import { KafkaBus } from "@k8s-audit/core";
import { quietLogger } from "./kafka.js";

/**
 * Counting what reached Kafka and Elasticsearch, straight from the engines: a topic is read from its first record to
 * the high-water mark of every partition as of the call, without a consumer group (nothing committed, nothing skipped),
 * through the bus's own KafkaBus.readRecent.
 */

export interface TopicRecord {
  partition: number;
  offset: string;
  key: string | undefined;
  value: string;
}

/** Every record of `topic` up to the high-water marks taken now. */
export async function readWholeTopic(brokers: string, topic: string, timeoutMs = 60_000): Promise<TopicRecord[]> {
  const bus = new KafkaBus({ brokers: brokers.split(","), clientId: "faults-counter", logger: quietLogger });
  const records: TopicRecord[] = [];
  try {
    await bus.readRecent(topic, { sinceMs: 0, maxPerPartition: Number.MAX_SAFE_INTEGER, timeoutMs }, (messages) => {
      for (const m of messages) records.push({ partition: m.partition, offset: m.offset, key: m.key, value: m.value });
    });
  } finally {
    await bus.close();
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
