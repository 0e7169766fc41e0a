import type { Bus, BusMessage, ConsumedMessage, ConsumeOptions, Subscription } from "./types.js";

interface TopicLog {
  messages: ConsumedMessage[];
  /** Wakes consumers waiting at the end of the log. */
  waiters: Set<() => void>;
}

/**
 * A single-process bus: an append-only log per topic (one partition) with committed offsets per consumer group,
 * so the embedded default behaves like Kafka for the stages (ordering, at-least-once, commit after work).
 */
export class MemoryBus implements Bus {
  readonly kind = "memory" as const;
  private readonly topics = new Map<string, TopicLog>();
  private readonly committed = new Map<string, number>();
  private closed = false;

  constructor(private readonly maxBatch = 500) {}

  private log(topic: string): TopicLog {
    let log = this.topics.get(topic);
    if (!log) {
      log = { messages: [], waiters: new Set() };
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
        offset: String(log.messages.length),
        timestamp: now,
      });
    }
    for (const wake of log.waiters) wake();
  }

  async partitionCount(_topic: string): Promise<number> {
    return 1;
  }

  /** Messages currently in a topic (for tests and the CLI's status output). */
  read(topic: string): readonly ConsumedMessage[] {
    return this.log(topic).messages;
  }

  async consume({ topic, groupId, fromBeginning = true, eachBatch, onAssignment }: ConsumeOptions): Promise<Subscription> {
    const log = this.log(topic);
    onAssignment?.([0]);
    const groupKey = `${groupId}\u0000${topic}`;
    if (!this.committed.has(groupKey)) this.committed.set(groupKey, fromBeginning ? 0 : log.messages.length);
    let running = true;
    let wake: (() => void) | undefined;
    const loop = (async () => {
      while (running) {
        const position = this.committed.get(groupKey) ?? 0;
        if (position >= log.messages.length) {
          await new Promise<void>((resolve) => {
            wake = resolve;
            log.waiters.add(resolve);
          });
          if (wake) log.waiters.delete(wake);
          continue;
        }
        const batch = log.messages.slice(position, position + this.maxBatch);
        try {
          await eachBatch(batch);
          this.committed.set(groupKey, position + batch.length);
        } catch {
          // Not committed: the batch is redelivered, as Kafka would after a failed batch. Back off briefly.
          await new Promise((r) => setTimeout(r, 200));
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

  async ping(): Promise<boolean> {
    return !this.closed;
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const log of this.topics.values()) for (const wake of log.waiters) wake();
  }
}
