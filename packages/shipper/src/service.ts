import type { Client } from "@elastic/elasticsearch";
import { AlertSchema, type Bus, type BusMessage, type Logger, type Subscription, type Topics } from "@k8s-audit/core";
import { type BulkDocument, bulkCreate } from "./bulk.js";
import { alertsDataStream, ensureAlertTemplate } from "./templates.js";

export interface ShipperServiceOptions {
  bus: Bus;
  topics: Topics;
  es: Client;
  logger: Logger;
  /** Data stream namespace: logs-k8s_audit.alert-<namespace>. */
  namespace: string;
  groupId?: string;
}

/**
 * The shipper stage: alerts topic → Elasticsearch. Offsets are committed only after the batch is stored (or its refused
 * items are on the dead-letter topic); a redelivered batch is harmless thanks to create + deterministic ids.
 */
export async function startShipperService(options: ShipperServiceOptions): Promise<Subscription> {
  const { bus, topics, es, logger } = options;
  await ensureAlertTemplate(es);
  await bus.ensureTopics([topics.alerts, topics.deadLetter]);
  const index = alertsDataStream(options.namespace);
  return bus.consume({
    topic: topics.alerts,
    groupId: options.groupId ?? "k8s-audit-shipper",
    eachBatch: async (messages) => {
      const docs: BulkDocument[] = [];
      const deadLetters: BusMessage[] = [];
      const ingested = new Date().toISOString();
      for (const message of messages) {
        const alert = AlertSchema.safeParse(safeJson(message.value));
        if (!alert.success) {
          deadLetters.push(deadLetter(message.value, `shipper: invalid alert: ${alert.error.issues[0]?.message}`));
          continue;
        }
        const document = {
          ...alert.data,
          event: { ...alert.data.event, ingested },
          data_stream: { type: "logs", dataset: "k8s_audit.alert", namespace: options.namespace },
        };
        docs.push({ id: alert.data.event.id, index, document });
      }
      const outcome = docs.length > 0 ? await bulkCreate(es, docs) : { stored: 0, rejected: [] };
      for (const r of outcome.rejected) {
        deadLetters.push(deadLetter(JSON.stringify(r.doc.document), `shipper: elasticsearch refused (${r.status}) ${r.reason}`));
      }
      await bus.publish(topics.deadLetter, deadLetters);
      if (outcome.rejected.length > 0)
        logger.warn({ refused: outcome.rejected.length }, "alerts refused by Elasticsearch; sent to dead letters");
      logger.debug({ stored: outcome.stored }, "alerts stored");
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
  return { value: raw, headers: { "x-k8s-audit-reason": reason, "x-k8s-audit-stage": "shipper" } };
}
