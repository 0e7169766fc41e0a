import { createLogger, type Logger } from "../logger.js";
import { deadLetterMessage } from "./dead-letter.js";
import type { Bus, BusMessage, ConsumedMessage, ConsumeOptions, Subscription } from "./types.js";

interface TopicLog {
  messages: ConsumedMessage[];
  /** Offset of messages[0]: the log is trimmed from the front, offsets stay absolute. */
  base: number;
  /** Consumer groups reading this topic (their committed offsets are in MemoryBus.committed). */
  groups: Set<string>;
  /** Wakes consumers waiting at the end of the log. */
  waiters: Set<() => void>;
}

export interface MemoryBusOptions {
  /** Largest batch handed to a consumer (default 500). */
  maxBatch?: number;
  /**
   * A topic nobody consumes (dead letters, alerts without Elasticsearch in `start`) keeps at most this many messages,
   * oldest dropped first (default 100,000): the embedded bus is not storage; Kafka is.
   */
  maxUnconsumedMessages?: number;
  /** Where a failing batch handler is reported (default: a logger of its own, on stderr like every other). */
  logger?: Logger;
  /** Where a batch goes once its handler has failed `maxAttempts` times (default k8s-audit.deadletter, the config's default). */
  deadLetterTopic?: string;
  /**
   * Deliveries of one batch before it is dead-lettered (default 6). The defaults for this and the backoff are KafkaBus's
   * retry settings (5 retries, 200 ms doubling to 3 s), so a failing handler is retried on the same schedule.
   */
  maxAttempts?: number;
  /** Wait before the first redelivery, doubled after each (default 200 ms), up to maxBackoffMs (default 3000 ms). */
  initialBackoffMs?: number;
  maxBackoffMs?: number;
}

/** K8S_AUDIT_TOPIC_DEADLETTER's default: the bus is built without the config in reach (wiring.ts passes none). */
const DEFAULT_DEAD_LETTER_TOPIC = "k8s-audit.deadletter";

/** A consumed prefix is cut off once it is this long (and at least half the log): amortised O(1) per message. */
const TRIM_AT_LEAST = 4096;

/**
 * A single-process bus: an append-only log per topic (one partition) with committed offsets per consumer group,
 * so the embedded default behaves like Kafka for the stages (ordering, at-least-once, commit after work). What every
 * group of a topic has committed is dropped, so a long-running `start` does not grow without bound.
 */
export class MemoryBus implements Bus {
  readonly kind = "memory" as const;
  private readonly topics = new Map<string, TopicLog>();
  private readonly committed = new Map<string, number>();
  private closed = false;
  private readonly maxBatch: number;
  private readonly maxUnconsumed: number;
  private readonly retry: { maxAttempts: number; initialBackoffMs: number; maxBackoffMs: number };
  private readonly deadLetterTopic: string;
  private givenLogger: Logger | undefined;
  /** Messages of unconsumed topics dropped by the cap, per topic. */
  readonly droppedUnconsumed = new Map<string, number>();

  constructor(options: MemoryBusOptions | number = {}) {
    const o = typeof options === "number" ? { maxBatch: options } : options;
    this.maxBatch = o.maxBatch ?? 500;
    this.maxUnconsumed = o.maxUnconsumedMessages ?? 100_000;
    this.retry = { maxAttempts: o.maxAttempts ?? 6, initialBackoffMs: o.initialBackoffMs ?? 200, maxBackoffMs: o.maxBackoffMs ?? 3000 };
    this.deadLetterTopic = o.deadLetterTopic ?? DEFAULT_DEAD_LETTER_TOPIC;
    this.givenLogger = o.logger?.child({ component: "memory-bus" });
  }

  /** Made on first use: most buses never log, and each logger of our own holds a stderr writer. */
  private get logger(): Logger {
    this.givenLogger ??= createLogger().child({ component: "memory-bus" });
    return this.givenLogger;
  }

  private log(topic: string): TopicLog {
    let log = this.topics.get(topic);
    if (!log) {
      log = { messages: [], base: 0, groups: new Set(), waiters: new Set() };
      this.topics.set(topic, log);
    }
    return log;
  }

  async ensureTopics(topics: string[]): Promise<void> {
    for (const t of topics) this.log(t);
  }

  async publish(topic: string, messages: BusMessage[]): Promise<void> {
    if (this.closed) throw new Error("bus is closed");
    const log = this.log(topic);
    const now = Date.now();
    for (const m of messages) {
      log.messages.push({
        key: m.key,
        value: m.value,
        headers: m.headers,
        topic,
        partition: 0,
        offset: String(log.base + log.messages.length),
        timestamp: now,
      });
    }
    if (log.groups.size === 0 && log.messages.length > this.maxUnconsumed * 1.1) {
      const drop = log.messages.length - this.maxUnconsumed;
      log.messages.splice(0, drop);
      log.base += drop;
      this.droppedUnconsumed.set(topic, (this.droppedUnconsumed.get(topic) ?? 0) + drop);
    }
    for (const wake of log.waiters) wake();
  }

  /** Drops the prefix every group of the topic has committed. */
  private trim(topic: string, log: TopicLog): void {
    let lowest = Number.POSITIVE_INFINITY;
    for (const group of log.groups) lowest = Math.min(lowest, this.committed.get(`${group}\u0000${topic}`) ?? log.base);
    const consumed = lowest - log.base;
    if (consumed >= TRIM_AT_LEAST && consumed * 2 >= log.messages.length) {
      log.messages.splice(0, consumed);
      log.base = lowest;
    }
  }

  async partitionCount(_topic: string): Promise<number> {
    return 1;
  }

  /** Messages currently held for a topic: what some group has not committed yet, or the capped tail of an unread topic. */
  read(topic: string): readonly ConsumedMessage[] {
    return this.log(topic).messages;
  }

  async consume({ topic, groupId, fromBeginning = true, eachBatch, onAssignment }: ConsumeOptions): Promise<Subscription> {
    const log = this.log(topic);
    onAssignment?.([0]);
    const groupKey = `${groupId}\u0000${topic}`;
    if (!this.committed.has(groupKey)) this.committed.set(groupKey, fromBeginning ? log.base : log.base + log.messages.length);
    log.groups.add(groupId);
    let running = true;
    let wake: (() => void) | undefined;
    /** A backoff that stop() cuts short. */
    const pause = (ms: number) =>
      new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, ms);
        wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    const commit = (position: number, count: number) => {
      this.committed.set(groupKey, position + count);
      this.trim(topic, log);
    };
    const { maxAttempts, initialBackoffMs, maxBackoffMs } = this.retry;
    // Failures of the batch at the committed position, in a row.
    let failures = 0;
    const loop = (async () => {
      while (running) {
        const position = this.committed.get(groupKey) ?? log.base;
        if (position >= log.base + log.messages.length) {
          await new Promise<void>((resolve) => {
            wake = resolve;
            log.waiters.add(resolve);
          });
          if (wake) log.waiters.delete(wake);
          continue;
        }
        const start = position - log.base;
        const batch = log.messages.slice(start, start + this.maxBatch);
        try {
          await eachBatch(batch);
          failures = 0;
          commit(position, batch.length);
        } catch (err) {
          failures++;
          const where = { topic, groupId, offset: String(position), messages: batch.length, attempt: failures, maxAttempts };
          if (failures < maxAttempts) {
            // Not committed: the batch is delivered again, as Kafka would after a failed batch.
            const retryInMs = Math.min(initialBackoffMs * 2 ** (failures - 1), maxBackoffMs);
            this.logger.warn({ err, ...where, retryInMs }, "batch handler failed; the batch is delivered again");
            await pause(retryInMs);
            continue;
          }
          this.logger.error({ err, ...where, deadLetterTopic: this.deadLetterTopic }, "batch handler kept failing; batch dead-lettered");
          if (await this.deadLetter(topic, groupId, batch, err, failures)) {
            failures = 0;
            commit(position, batch.length);
          } else {
            await pause(maxBackoffMs);
          }
        }
      }
    })();
    return {
      stop: async () => {
        running = false;
        wake?.();
        await loop;
      },
    };
  }

  /**
   * Moves a batch its handler keeps failing on to the dead-letter topic, one dead letter per message, shaped like the
   * stages' own (value and key as read, the reason and the stage in headers), so the group can move on. False when it
   * could not be stored (the batch stays where it is). A group reading the dead-letter topic itself is not fed its own
   * failures: they are dropped, and the error above says so.
   */
  private async deadLetter(topic: string, groupId: string, batch: ConsumedMessage[], err: unknown, attempts: number): Promise<boolean> {
    if (topic === this.deadLetterTopic) return true;
    const reason = `${groupId}: batch handler failed ${attempts} times: ${err instanceof Error ? err.message : String(err)}`;
    try {
      await this.publish(
        this.deadLetterTopic,
        batch.map((m) => deadLetterMessage(groupId, reason, m)),
      );
      return true;
    } catch (publishErr) {
      this.logger.error({ err: publishErr, topic, groupId }, "dead-lettering a failed batch failed; it is delivered again");
      return false;
    }
  }

  async ping(): Promise<boolean> {
    return !this.closed;
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const log of this.topics.values()) for (const wake of log.waiters) wake();
  }
}
