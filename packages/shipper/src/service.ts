import type { Client } from "@elastic/elasticsearch";
import {
  AlertSchema,
  type Bus,
  type BusMessage,
  type ConsumedMessage,
  consumerGroupsOf,
  DEFAULT_CONFIG,
  deadLetterMessage,
  describeIssues,
  type Logger,
  looksLikeAuditEvent,
  type Subscription,
  type Topics,
} from "@k8s-audit/core";
import { type BulkDocument, bulkCreate } from "./bulk.js";
import { ensureRawEventTemplate, eventsDataStream, rawEventDocument } from "./raw-events.js";
import { ALERTS_DATASET, alertsDataStream, ensureAlertTemplate } from "./templates.js";

export interface ShipperServiceOptions {
  bus: Bus;
  topics: Topics;
  es: Client;
  logger: Logger;
  /** Data stream namespace: logs-k8s_audit.alert-<namespace> (and logs-k8s_audit.events-<namespace>). */
  namespace: string;
  groupId?: string;
  /** Also index the raw audit events from the events topic. */
  shipEvents?: boolean;
  /** Largest _bulk request body; a consumed batch is split into requests of at most this size. */
  maxBulkBytes?: number;
  /** Attempts for a whole _bulk request (connection loss, 5xx, 429) before the batch is handed back for redelivery. */
  maxAttempts?: number;
  /** Partitions processed at once and bytes fetched per partition (K8S_AUDIT_SHIPPER_*; the schema's defaults). */
  partitionsConcurrently?: number;
  fetchBytes?: number;
}

type Converted = { doc: BulkDocument } | { error: string };

/**
 * The shipper stage: alerts (and, if asked, raw events) → Elasticsearch. Offsets are committed only after the batch is
 * stored or its refused items are on the dead-letter topic; a redelivered batch is harmless (create + deterministic ids:
 * 409 counts as stored).
 */
export async function startShipperService(options: ShipperServiceOptions): Promise<Subscription> {
  const { bus, topics, es, namespace } = options;
  await ensureAlertTemplate(es);
  if (options.shipEvents) await ensureRawEventTemplate(es);
  await bus.ensureTopics([topics.alerts, topics.deadLetter, ...(options.shipEvents ? [topics.events] : [])]);

  const alertIndex = alertsDataStream(namespace);
  const subscriptions = [
    await shipTopic(options, topics.alerts, options.groupId ?? consumerGroupsOf(DEFAULT_CONFIG).shipper, "alerts", (message, ingested) => {
      const alert = AlertSchema.safeParse(safeJson(message.value));
      if (!alert.success) return { error: `invalid alert: ${describeIssues(alert.error, 1)}` };
      return {
        doc: {
          id: alert.data.event.id,
          index: alertIndex,
          document: {
            ...alert.data,
            event: { ...alert.data.event, ingested },
            data_stream: { type: "logs", dataset: ALERTS_DATASET, namespace },
          },
        },
      };
    }),
  ];
  if (options.shipEvents) {
    const eventIndex = eventsDataStream(namespace);
    subscriptions.push(
      await shipTopic(
        options,
        topics.events,
        `${options.groupId ?? consumerGroupsOf(DEFAULT_CONFIG).shipper}-events`,
        "events",
        (message, ingested) => {
          const event = safeJson(message.value);
          if (!looksLikeAuditEvent(event)) return { error: "not an audit event" };
          const { id, document } = rawEventDocument(event, ingested);
          return {
            doc: {
              id,
              index: eventIndex,
              document: { ...document, data_stream: { type: "logs", dataset: "k8s_audit.events", namespace } },
            },
          };
        },
      ),
    );
  }
  return { stop: async () => void (await Promise.all(subscriptions.map((s) => s.stop()))) };
}

async function shipTopic(
  options: ShipperServiceOptions,
  topic: string,
  groupId: string,
  what: string,
  convert: (message: ConsumedMessage, ingested: string) => Converted,
): Promise<Subscription> {
  const { bus, topics, es, logger } = options;
  const maxBytes = options.maxBulkBytes ?? DEFAULT_CONFIG.K8S_AUDIT_BULK_MAX_BYTES;
  return bus.consume({
    topic,
    groupId,
    // Partitions in parallel and batches of several MB: bulk requests overlap and are large, as helpers.bulk's are.
    partitionsConcurrently: options.partitionsConcurrently ?? DEFAULT_CONFIG.K8S_AUDIT_SHIPPER_PARTITIONS_CONCURRENTLY,
    maxBytesPerPartition: options.fetchBytes ?? DEFAULT_CONFIG.K8S_AUDIT_SHIPPER_FETCH_BYTES,
    eachBatch: async (messages) => {
      const ingested = new Date().toISOString();
      const deadLetters: BusMessage[] = [];
      let chunk: BulkDocument[] = [];
      let chunkBytes = 0;
      let stored = 0;
      const flush = async () => {
        if (chunk.length === 0) return;
        const outcome = await bulkCreate(es, chunk, {
          maxAttempts: options.maxAttempts ?? DEFAULT_CONFIG.K8S_AUDIT_SHIPPER_MAX_ATTEMPTS,
          maxBackoffMs: 5000,
        });
        stored += outcome.stored;
        for (const r of outcome.rejected) {
          deadLetters.push(deadLetter(JSON.stringify(r.doc.document), `shipper: elasticsearch refused (${r.status}) ${r.reason}`));
        }
        chunk = [];
        chunkBytes = 0;
      };
      for (const message of messages) {
        const converted = convert(message, ingested);
        if ("error" in converted) {
          deadLetters.push(deadLetter(message.value, `shipper: ${converted.error}`));
          continue;
        }
        chunk.push(converted.doc);
        // The message size is a close enough estimate of the document's: no second serialisation on the hot path.
        chunkBytes += message.value.length + 200;
        if (chunkBytes >= maxBytes) await flush();
      }
      await flush();
      await bus.publish(topics.deadLetter, deadLetters);
      if (deadLetters.length > 0) logger.warn({ refused: deadLetters.length, what }, "documents refused; sent to the dead-letter topic");
      logger.debug({ stored, what }, "documents stored");
    },
  });
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

function deadLetter(raw: string, reason: string): BusMessage {
  return deadLetterMessage("shipper", reason, { value: raw });
}
