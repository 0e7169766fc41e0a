import type { Client } from "@elastic/elasticsearch";
import { consumerGroupsOf, type Stage, type StageContext, type Subscription } from "@k8s-audit/core";
import { createElasticsearchClient } from "./client.js";
import { startShipperService } from "./service.js";

/** The shipper: alerts topic (and the events topic with K8S_AUDIT_SHIP_EVENTS) → Elasticsearch data streams. */
export class ShipperStage implements Stage {
  readonly name = "shipper";
  private es?: Client;
  private subscription?: Subscription;

  async start(context: StageContext): Promise<void> {
    const { bus, topics, config, logger } = context;
    if (!config.ELASTICSEARCH_URL) throw new Error("the shipper needs ELASTICSEARCH_URL");
    this.es = createElasticsearchClient(config.ELASTICSEARCH_URL, config.ELASTICSEARCH_API_KEY);
    this.subscription = await startShipperService({
      bus,
      topics,
      es: this.es,
      logger,
      namespace: config.K8S_AUDIT_ES_NAMESPACE,
      shipEvents: config.K8S_AUDIT_SHIP_EVENTS,
      maxBulkBytes: config.K8S_AUDIT_BULK_MAX_BYTES,
      groupId: consumerGroupsOf(config).shipper,
      maxAttempts: config.K8S_AUDIT_SHIPPER_MAX_ATTEMPTS,
      partitionsConcurrently: config.K8S_AUDIT_SHIPPER_PARTITIONS_CONCURRENTLY,
      fetchBytes: config.K8S_AUDIT_SHIPPER_FETCH_BYTES,
    });
    logger.info({ elasticsearch: config.ELASTICSEARCH_URL }, "shipper running");
  }

  /** Ready while Elasticsearch answers (its documents wait in Kafka otherwise). */
  async ready(): Promise<boolean> {
    return this.es !== undefined && (await this.es.ping().catch(() => false)) === true;
  }

  async stop(): Promise<void> {
    await this.subscription?.stop();
    await this.es?.close();
  }
}
