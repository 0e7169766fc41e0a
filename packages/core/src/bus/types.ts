/**
 * The bus contract every stage talks to. Two implementations: Kafka (scale-out) and in-memory (embedded default).
 * `publish` resolves only once the messages are durable (Kafka: acks=all). A consumer's batch handler resolving is what
 * allows its offsets to be committed, so work is acknowledged only after it is done downstream.
 */
export interface BusMessage {
  key?: string;
  /** Explicit partition (internal topics that address every partition, e.g. watermark ticks); else by key. */
  partition?: number;
  value: string;
  headers?: Record<string, string>;
}

export interface ConsumedMessage extends BusMessage {
  topic: string;
  partition: number;
  offset: string;
  /** Broker or append time, milliseconds since the epoch. */
  timestamp: number;
}

export interface ConsumeOptions {
  topic: string;
  groupId: string;
  fromBeginning?: boolean;
  /** Partitions processed at once (each in order); more overlaps downstream round trips. Default 1. */
  partitionsConcurrently?: number;
  /** Bytes fetched per partition per batch; larger batches mean fewer, larger downstream requests. */
  maxBytesPerPartition?: number;
  /** Called with the partitions this consumer owns after each group rebalance (Kafka); state for others is stale. */
  onAssignment?: (partitions: number[]) => void;
  /**
   * The handler commits offsets itself (Subscription.commit), e.g. after a cache of its output is flushed; a batch
   * resolving then only moves the read position. Kafka only; the in-memory bus commits after each batch regardless.
   */
  manualCommit?: boolean;
  /** Called with each batch in order; offsets are committed only after it resolves. */
  eachBatch: (messages: ConsumedMessage[]) => Promise<void>;
}

export interface Subscription {
  stop(): Promise<void>;
  /** With manualCommit: marks everything before `offset` (the next to read) in each partition as done. */
  commit?(offsets: { partition: number; offset: string }[]): Promise<void>;
}

export interface Bus {
  readonly kind: "kafka" | "memory";
  /** Creates the topics if missing; idempotent. */
  ensureTopics(topics: string[]): Promise<void>;
  publish(topic: string, messages: BusMessage[]): Promise<void>;
  consume(options: ConsumeOptions): Promise<Subscription>;
  /** How many partitions the topic has (1 for the in-memory bus). */
  partitionCount(topic: string): Promise<number>;
  /** Is the backing store reachable right now? (readiness) */
  ping(): Promise<boolean>;
  /**
   * Reads what the topic received since `sinceMs` (by record time), at most `maxPerPartition` of the newest records
   * per partition, up to the end as of the call, without a consumer group (nothing committed). Kafka only: it is how a
   * restarted stage recovers recent state (the ingest's dedup). Resolves with the number of records read.
   */
  readRecent?(
    topic: string,
    options: { sinceMs: number; maxPerPartition: number; timeoutMs: number },
    onMessages: (messages: ConsumedMessage[]) => void,
  ): Promise<number>;
  close(): Promise<void>;
}

export interface Topics {
  events: string;
  alerts: string;
  deadLetter: string;
  /** Internal: the detector's partial window counts, keyed by rule and key (scale-out only). */
  windows?: string;
}
