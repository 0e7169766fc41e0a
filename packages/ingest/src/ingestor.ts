import {
  type AuditEvent,
  AuditEventSchema,
  type Bus,
  type BusMessage,
  DEFAULT_MAX_FUTURE_SKEW_MS,
  deadLetterMessage,
  describeIssues,
  itemsOf,
  type Logger,
  type Topics,
} from "@k8s-audit/core";
import { ingestDedupKey, type RecentEvents } from "./dedup.js";
import type { DepthCut } from "./json-guard.js";
import type { IngestMetrics } from "./metrics.js";
import { redactValue } from "./redact.js";
import { DEFAULT_INGEST_SETTINGS } from "./settings.js";
import type { Spool, SpoolEntry } from "./spool.js";
import { deadLetterValue, TRUNCATED_ANNOTATION, TRUNCATED_FIELDS_ANNOTATION, truncateEvent } from "./truncate.js";

const MAX_REPORTED_ERRORS = 20;

/** Set on an event stamped further ahead of the ingest's clock than the allowed skew: how many seconds ahead. */
export const FUTURE_STAMP_ANNOTATION = "k8s-audit.io/future-timestamp-seconds";

/**
 * A broken node clock or a hostile client can stamp events far in the future. They are kept (nothing is lost) but
 * marked, so an analyst sees why the detector's windows did not count them.
 */
function markFutureStamp(event: AuditEvent, now: number, maxSkewMs: number): void {
  const ahead = Date.parse((event.stageTimestamp ?? event.timestamp) as string) - now;
  if (ahead > maxSkewMs) event.annotations = { ...event.annotations, [FUTURE_STAMP_ANNOTATION]: String(Math.round(ahead / 1000)) };
}

/** Marks an event whose values nested too deep were replaced (json-guard.ts) as truncated, naming the fields. */
function markDepthCuts(event: AuditEvent, cuts: DepthCut[]): void {
  const fields = [...new Set(cuts.map((c) => c.field || "(item)"))];
  const previous = event.annotations?.[TRUNCATED_FIELDS_ANNOTATION];
  event.annotations = {
    ...event.annotations,
    [TRUNCATED_ANNOTATION]: "true",
    [TRUNCATED_FIELDS_ANNOTATION]: [...(previous ? [previous] : []), ...fields.map((f) => `${f}(nested too deep)`)].join(","),
  };
}

/** The dead letter of an item that failed: as deadLetterValue, or nothing but its auditID if even that fails. */
function safeDeadLetterValue(item: unknown, maxBytes: number): { value: string; truncated: boolean } {
  try {
    return deadLetterValue(item, maxBytes);
  } catch {
    return placeholderOf(item);
  }
}

/** Used when the item may not even have been redacted: only its auditID leaves. */
function placeholderOf(item: unknown): { value: string; truncated: boolean } {
  let id: unknown;
  try {
    id = item !== null && typeof item === "object" ? (item as { auditID?: unknown }).auditID : undefined;
  } catch {
    // the item is what failed: nothing of it leaves
  }
  return { value: JSON.stringify({ auditID: typeof id === "string" ? id.slice(0, 128) : null }), truncated: true };
}

export interface IngestResult {
  accepted: number;
  rejected: number;
  deduplicated: number;
  truncated: number;
  /** Where the accepted events are: on the bus (Kafka), or in the local spool until Kafka is back. */
  storedIn?: "bus" | "spool";
  errors?: { index: number; reason: string }[];
}

export interface IngestorOptions {
  bus: Bus;
  topics: Topics;
  logger: Logger;
  metrics: IngestMetrics;
  maxEventBytes?: number;
  /** How far ahead of the ingest's clock an event may be stamped before it is marked (default 5 minutes). */
  maxFutureSkewMs?: number;
  spool?: Spool;
  dedup?: RecentEvents;
  redact?: boolean;
  publishTimeoutMs?: number;
}

type Outcome = { status: 200 | 400; body: IngestResult } | { status: 503; body: { error: string } };

/**
 * One webhook body in, durable messages out: split, validate, redact, truncate, stamp, dedup, then store on the bus
 * (or the spool). Nothing is dropped silently: invalid items become dead letters, oversize events lose bulk (see truncate.ts).
 */
export class Ingestor {
  private readonly maxEventBytes: number;

  constructor(private readonly options: IngestorOptions) {
    this.maxEventBytes = options.maxEventBytes ?? DEFAULT_INGEST_SETTINGS.maxEventBytes;
  }

  /** `depthCuts`: where the JSON guard replaced values nested too deep (json-guard.ts); those events are marked truncated. */
  async ingest(body: unknown, cluster: string, depthCuts: readonly DepthCut[] = []): Promise<Outcome> {
    const { topics, metrics } = this.options;
    let items: unknown[];
    try {
      items = itemsOf(body).items;
    } catch (err) {
      metrics.rejected.inc({ reason: "not_an_event_list" });
      return {
        status: 400,
        body: { accepted: 0, rejected: 1, deduplicated: 0, truncated: 0, errors: [{ index: -1, reason: (err as Error).message }] },
      };
    }
    metrics.received.inc(items.length);

    const events: BusMessage[] = [];
    const deadLetters: BusMessage[] = [];
    const errors: { index: number; reason: string }[] = [];
    const newKeys: string[] = [];
    const batchKeys = new Set<string>();
    let deduplicated = 0;
    let truncated = 0;
    const now = Date.now();

    const cutsByItem = new Map<number, DepthCut[]>();
    for (const cut of depthCuts) {
      const list = cutsByItem.get(cut.item);
      if (list) list.push(cut);
      else cutsByItem.set(cut.item, [cut]);
    }

    items.forEach((received, index) => {
      let item = received;
      const cuts = cutsByItem.get(index);
      const dead = (reason: string, value: { value: string; truncated: boolean }) => {
        if (errors.length < MAX_REPORTED_ERRORS) errors.push({ index, reason });
        deadLetters.push(
          deadLetterMessage("ingest", reason, {
            value: value.value,
            headers: { "x-k8s-audit-cluster": cluster, ...(value.truncated || cuts ? { "x-k8s-audit-truncated": "true" } : {}) },
          }),
        );
      };
      // One item's failure (a walker's RangeError, a bug) is that item's dead letter, never a 5xx for the whole batch.
      let redacted = this.options.redact === false;
      try {
        // Redact first: even an invalid item bound for the dead-letter topic must not carry secret values. A bare string
        // item cannot be changed in place: its redacted copy is what may leave.
        if (this.options.redact !== false) {
          const redaction = redactValue(item);
          item = redaction.value;
          if (redaction.paths.length > 0) metrics.redacted.inc();
        }
        redacted = true;
        const parsed = AuditEventSchema.safeParse(item);
        if (!parsed.success) {
          metrics.rejected.inc({ reason: "invalid_event" });
          // A dead letter too large (or nested too deep) to store would fail the whole batch: it is stored capped instead.
          dead(`invalid event: ${describeIssues(parsed.error)}`, deadLetterValue(item, this.maxEventBytes));
          return;
        }
        // zod's output is a fresh object: stamp it in place rather than copy it.
        const event: AuditEvent = parsed.data;
        event.cluster = cluster;
        if (cuts) markDepthCuts(event, cuts);
        markFutureStamp(event, now, this.options.maxFutureSkewMs ?? DEFAULT_MAX_FUTURE_SKEW_MS);
        const key = ingestDedupKey(cluster, event);
        if (batchKeys.has(key) || this.options.dedup?.has(key)) {
          deduplicated++;
          return;
        }
        let value: string | undefined;
        let bytes: number | undefined;
        try {
          value = JSON.stringify(event);
          bytes = Buffer.byteLength(value);
        } catch {
          // A body nested deeper than JSON.stringify can go (the apiserver accepts 10,000 levels): cut like an oversize one.
        }
        if (value === undefined || bytes === undefined || bytes > this.maxEventBytes) {
          value = truncateEvent(event, this.maxEventBytes, bytes);
          truncated++;
        } else if (cuts) {
          truncated++;
        }
        // Recorded only once the event is certain to be stored: a key of an event that failed would drop its re-send.
        batchKeys.add(key);
        newKeys.push(key);
        events.push({ key: `${cluster}/${event.auditID}`, value });
      } catch (err) {
        metrics.rejected.inc({ reason: "ingest_error" });
        this.options.logger.warn({ err, index, cluster }, "one item of a batch failed; dead-lettered");
        dead(`ingest failed: ${(err as Error).message}`, redacted ? safeDeadLetterValue(item, this.maxEventBytes) : placeholderOf(item));
      }
    });
    metrics.deduped.inc(deduplicated);
    metrics.truncated.inc(truncated);

    const entries: SpoolEntry[] = [
      { topic: topics.events, messages: events },
      { topic: topics.deadLetter, messages: deadLetters },
    ].filter((e) => e.messages.length > 0);
    const storedIn = entries.length > 0 ? await this.store(entries) : "bus";
    if (storedIn === "unavailable")
      return { status: 503, body: { error: "Kafka is unavailable and the spool is full or disabled; retry later" } };
    if (storedIn === "spool") metrics.spooled.inc(events.length);
    this.options.dedup?.add(newKeys);
    metrics.accepted.inc(events.length);

    const result: IngestResult = {
      accepted: events.length,
      rejected: deadLetters.length,
      deduplicated,
      truncated,
      storedIn,
      ...(errors.length ? { errors } : {}),
    };
    // A batch with nothing valid in it is a client fault; its items are in the dead-letter topic all the same.
    return { status: events.length === 0 && deadLetters.length > 0 ? 400 : 200, body: result };
  }

  private async store(entries: SpoolEntry[]): Promise<"bus" | "spool" | "unavailable"> {
    const { bus, spool, logger, metrics } = this.options;
    // While older events wait in the spool, newer ones queue behind them: order is kept across an outage.
    if (spool?.pending) return (await spool.append(entries)) ? "spool" : "unavailable";
    const end = metrics.produceLatency.startTimer();
    try {
      await withTimeout(
        Promise.all(entries.map((e) => bus.publish(e.topic, e.messages))),
        this.options.publishTimeoutMs ?? DEFAULT_INGEST_SETTINGS.publishTimeoutMs,
      );
      end();
      return "bus";
    } catch (err) {
      logger.warn({ err, spool: Boolean(spool) }, "Kafka did not acknowledge the events");
      if (spool && (await spool.append(entries))) return "spool";
      return "unavailable";
    }
  }
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no acknowledgement within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
