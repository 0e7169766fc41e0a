import { type Consumer, Kafka, type KafkaConfig, logLevel, Partitioners, type Producer } from "kafkajs";
import type { Logger } from "pino";
import type { Bus, BusMessage, ConsumedMessage, ConsumeOptions, Subscription } from "./types.js";

/**
 * The only module that knows kafkajs: it is unmaintained, so it stays swappable
 * (docs/decisions/0006-kafka-client-behind-one-module.md).
 * Producer: idempotent, acks=all, one in-flight request per broker so retries cannot reorder.
 */
export interface KafkaBusOptions {
  brokers: string[];
  clientId: string;
  logger: Logger;
  /** Partitions for topics this bus creates. */
  partitions?: number;
  replicationFactor?: number;
  ssl?: KafkaConfig["ssl"];
  sasl?: KafkaConfig["sasl"];
}

const LEVELS: Record<number, "error" | "warn" | "info" | "debug"> = {
  [logLevel.ERROR]: "error",
  [logLevel.WARN]: "warn",
  [logLevel.INFO]: "info",
  [logLevel.DEBUG]: "debug",
};

interface QueuedPublish {
  topic: string;
  messages: BusMessage[];
  resolve: () => void;
  reject: (e: unknown) => void;
}

/** Soft cap on one produce request's payload when publishes are grouped. */
const MAX_REQUEST_BYTES = 512 * 1024;

/** Groups the publishes' messages by topic into requests of at most `maxBytes` (a single larger message goes alone). */
function chunkByBytes(group: QueuedPublish[], maxBytes: number): Map<string, BusMessage[]>[] {
  const chunks: Map<string, BusMessage[]>[] = [];
  let current = new Map<string, BusMessage[]>();
  let bytes = 0;
  for (const item of group) {
    for (const message of item.messages) {
      const size = message.value.length + (message.key?.length ?? 0);
      if (bytes > 0 && bytes + size > maxBytes) {
        chunks.push(current);
        current = new Map();
        bytes = 0;
      }
      const list = current.get(item.topic);
      if (list) list.push(message);
      else current.set(item.topic, [message]);
      bytes += size;
    }
  }
  if (bytes > 0) chunks.push(current);
  return chunks;
}

export class KafkaBus implements Bus {
  readonly kind = "kafka" as const;
  private readonly kafka: Kafka;
  private producer: Producer | undefined;
  private producerReady: Promise<Producer> | undefined;
  private readonly consumers = new Set<Consumer>();

  constructor(private readonly options: KafkaBusOptions) {
    const log = options.logger.child({ component: "kafka" });
    this.kafka = new Kafka({
      clientId: options.clientId,
      brokers: options.brokers,
      ssl: options.ssl,
      sasl: options.sasl,
      connectionTimeout: 3000,
      requestTimeout: 10000,
      retry: { retries: 5, initialRetryTime: 200, maxRetryTime: 3000 },
      logLevel: logLevel.WARN,
      logCreator:
        () =>
        ({ level, log: entry }) => {
          const { message, ...rest } = entry;
          // Retries are limited on purpose (a webhook request must be answered in seconds, the spool covers longer
          // outages), so kafkajs's warning about it is expected, not news.
          const expected = message.startsWith("Limiting retries for the idempotent producer");
          log[expected ? "debug" : (LEVELS[level] ?? "info")](rest, message);
        },
    });
  }

  private getProducer(): Promise<Producer> {
    if (!this.producerReady) {
      const producer = this.kafka.producer({
        idempotent: true,
        maxInFlightRequests: 1,
        createPartitioner: Partitioners.DefaultPartitioner,
      });
      this.producerReady = producer.connect().then(
        () => {
          this.producer = producer;
          return producer;
        },
        (err: unknown) => {
          this.producerReady = undefined;
          throw err;
        },
      );
    }
    return this.producerReady;
  }

  private resetProducer(): void {
    const old = this.producer;
    this.producer = undefined;
    this.producerReady = undefined;
    old?.disconnect().catch(() => {});
  }

  async ensureTopics(topics: string[]): Promise<void> {
    const admin = this.kafka.admin();
    await admin.connect();
    try {
      const existing = new Set(await admin.listTopics());
      const missing = topics.filter((t) => !existing.has(t));
      if (missing.length > 0) {
        await admin.createTopics({
          waitForLeaders: true,
          topics: missing.map((topic) => ({
            topic,
            numPartitions: this.options.partitions ?? 3,
            replicationFactor: this.options.replicationFactor ?? -1,
          })),
        });
      }
    } finally {
      await admin.disconnect();
    }
  }

  /**
   * Group commit: while one produce request is in flight, later publishes queue up and go together in the next one.
   * With one request in flight per broker (needed for ordering with retries), this is what lets concurrent webhook
   * requests share round trips instead of waiting in line. Each caller resolves when its own messages are acknowledged.
   */
  publish(topic: string, messages: BusMessage[]): Promise<void> {
    if (messages.length === 0) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      this.queued.push({ topic, messages, resolve, reject });
      if (!this.sending) void this.sendQueued();
    });
  }

  private readonly queued: QueuedPublish[] = [];
  private sending = false;

  private async sendQueued(): Promise<void> {
    this.sending = true;
    try {
      while (this.queued.length > 0) {
        // Take queued publishes in order up to the byte budget (always at least one): a partition's record batch must
        // stay under the broker's message.max.bytes (1 MB by default).
        let bytes = 0;
        let take = 0;
        while (take < this.queued.length && (take === 0 || bytes < MAX_REQUEST_BYTES)) {
          for (const m of (this.queued[take] as QueuedPublish).messages) bytes += m.value.length + (m.key?.length ?? 0);
          take++;
        }
        const group = this.queued.splice(0, take);
        try {
          const producer = await this.getProducer();
          // One large publish is split too, in order: each request stays under the budget.
          for (const chunk of chunkByBytes(group, MAX_REQUEST_BYTES)) {
            await producer.sendBatch({ acks: -1, topicMessages: [...chunk].map(([topic, messages]) => ({ topic, messages })) });
          }
          for (const item of group) item.resolve();
        } catch (err) {
          for (const item of group) item.reject(err);
          // kafkajs's idempotent producer advances its sequence numbers even for a send that failed, after which the
          // broker refuses every later send as out of order. A fresh producer (new producer id) starts clean; the
          // failed messages are the caller's to retry (the ingest answers 503 or spools them).
          this.resetProducer();
        }
      }
    } finally {
      this.sending = false;
    }
  }

  async consume({
    topic,
    groupId,
    fromBeginning = true,
    eachBatch,
    partitionsConcurrently,
    maxBytesPerPartition,
    onAssignment,
    manualCommit,
  }: ConsumeOptions): Promise<Subscription> {
    const consumer = this.kafka.consumer({
      groupId,
      maxWaitTimeInMs: 100,
      sessionTimeout: 30000,
      heartbeatInterval: 3000,
      // Asking for large batches also means waiting a little for them to fill (minBytes), rather than fetching dribbles.
      ...(maxBytesPerPartition
        ? {
            maxBytesPerPartition,
            maxBytes: maxBytesPerPartition * 4,
            minBytes: Math.min(maxBytesPerPartition, 1024 * 1024),
            maxWaitTimeInMs: 250,
          }
        : {}),
    });
    this.consumers.add(consumer);
    if (onAssignment) {
      consumer.on(consumer.events.GROUP_JOIN, (e) => onAssignment([...(e.payload.memberAssignment[topic] ?? [])].sort((a, b) => a - b)));
    }
    await consumer.connect();
    await consumer.subscribe({ topic, fromBeginning });
    await consumer.run({
      partitionsConsumedConcurrently: partitionsConcurrently ?? 1,
      // Offsets are resolved only after eachBatch resolves, so a crash mid-batch redelivers it (at-least-once).
      eachBatchAutoResolve: true,
      autoCommit: !manualCommit,
      eachBatch: async ({ batch, heartbeat }) => {
        const messages: ConsumedMessage[] = batch.messages.map((m) => ({
          topic: batch.topic,
          partition: batch.partition,
          offset: m.offset,
          timestamp: Number(m.timestamp),
          key: m.key?.toString(),
          value: m.value?.toString() ?? "",
          headers: m.headers
            ? Object.fromEntries(Object.entries(m.headers).map(([k, v]) => [k, String(Array.isArray(v) ? v[0] : v)]))
            : undefined,
        }));
        await eachBatch(messages);
        await heartbeat();
      },
    });
    return {
      stop: async () => {
        this.consumers.delete(consumer);
        await consumer.disconnect();
      },
      commit: async (offsets) => {
        if (offsets.length) await consumer.commitOffsets(offsets.map((o) => ({ topic, partition: o.partition, offset: o.offset })));
      },
    };
  }

  async partitionCount(topic: string): Promise<number> {
    const admin = this.kafka.admin();
    await admin.connect();
    try {
      const metadata = await admin.fetchTopicMetadata({ topics: [topic] });
      return metadata.topics[0]?.partitions.length ?? 0;
    } finally {
      await admin.disconnect();
    }
  }

  async readRecent(
    topic: string,
    options: { sinceMs: number; maxPerPartition: number; timeoutMs: number },
    onMessages: (messages: ConsumedMessage[]) => void,
  ): Promise<number> {
    const admin = this.kafka.admin();
    await admin.connect();
    let ends: Map<number, bigint>;
    let starts: Map<number, bigint>;
    try {
      const [byTime, offsets] = await Promise.all([
        admin.fetchTopicOffsetsByTimestamp(topic, options.sinceMs),
        admin.fetchTopicOffsets(topic),
      ]);
      ends = new Map(offsets.map((o) => [o.partition, BigInt(o.high)]));
      const low = new Map(offsets.map((o) => [o.partition, BigInt(o.low)]));
      starts = new Map();
      for (const { partition, offset } of byTime) {
        const end = ends.get(partition) ?? 0n;
        // -1: nothing at or after the time.
        const fromTime = BigInt(offset) < 0n ? end : BigInt(offset);
        const floor = end - BigInt(options.maxPerPartition);
        let start = fromTime > floor ? fromTime : floor;
        const first = low.get(partition) ?? 0n;
        if (start < first) start = first;
        if (start < end) starts.set(partition, start);
      }
    } finally {
      await admin.disconnect();
    }
    if (starts.size === 0) return 0;
    // A throwaway group: kafkajs consumers need one; nothing is committed, so it leaves no offsets behind.
    const consumer = this.kafka.consumer({
      groupId: `${this.options.clientId}-recent-${Date.now()}-${Math.random().toString(36).slice(2)}`,
    });
    let read = 0;
    const remaining = new Set(starts.keys());
    try {
      await consumer.connect();
      await consumer.subscribe({ topic, fromBeginning: false });
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`reading the recent records of ${topic} took over ${options.timeoutMs} ms`)),
          options.timeoutMs,
        );
        consumer.on(consumer.events.GROUP_JOIN, (e) => {
          for (const partition of e.payload.memberAssignment[topic] ?? []) {
            const start = starts.get(partition);
            if (start !== undefined) consumer.seek({ topic, partition, offset: start.toString() });
          }
        });
        consumer
          .run({
            autoCommit: false,
            eachBatch: async ({ batch }) => {
              const end = ends.get(batch.partition) ?? 0n;
              const start = starts.get(batch.partition);
              const messages: ConsumedMessage[] = [];
              for (const m of batch.messages) {
                const offset = BigInt(m.offset);
                if (start === undefined || offset < start || offset >= end) continue;
                messages.push({
                  topic,
                  partition: batch.partition,
                  offset: m.offset,
                  timestamp: Number(m.timestamp),
                  key: m.key?.toString(),
                  value: m.value?.toString() ?? "",
                });
              }
              read += messages.length;
              if (messages.length) onMessages(messages);
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
      await consumer.disconnect().catch(() => {});
    }
    return read;
  }

  async ping(): Promise<boolean> {
    const admin = this.kafka.admin();
    try {
      await admin.connect();
      await admin.describeCluster();
      return true;
    } catch {
      return false;
    } finally {
      await admin.disconnect().catch(() => {});
    }
  }

  async close(): Promise<void> {
    await Promise.all([...this.consumers].map((c) => c.disconnect()));
    this.consumers.clear();
    if (this.producer) await this.producer.disconnect();
    this.producer = undefined;
    this.producerReady = undefined;
  }
}
