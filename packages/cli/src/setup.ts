import { type Config, createBus, type Logger, topicsOf } from "@k8s-audit/core";
import { createElasticsearchClient, setupElasticsearch, setupKibana } from "@k8s-audit/shipper";

/** Idempotent preparation of the external stores; returns one line per thing done, for the operator. */
export async function setup(config: Config, logger: Logger): Promise<string[]> {
  const done: string[] = [];
  if (config.KAFKA_BROKERS) {
    const bus = createBus(config, logger);
    const topics = Object.values(topicsOf(config));
    try {
      await bus.ensureTopics(topics);
    } finally {
      await bus.close();
    }
    done.push(`kafka: topics ready: ${topics.join(", ")}`);
  } else done.push("kafka: KAFKA_BROKERS not set; skipped");
  if (config.ELASTICSEARCH_URL) {
    const es = createElasticsearchClient(config.ELASTICSEARCH_URL, config.ELASTICSEARCH_API_KEY);
    try {
      done.push(...(await setupElasticsearch(es, { retentionDays: config.K8S_AUDIT_RETENTION_DAYS })));
    } finally {
      await es.close();
    }
  } else done.push("elasticsearch: ELASTICSEARCH_URL not set; skipped");
  if (config.KIBANA_URL) done.push(...(await setupKibana(config.KIBANA_URL, { apiKey: config.KIBANA_API_KEY })));
  else done.push("kibana: KIBANA_URL not set; skipped (import packages/shipper/kibana/k8s-audit.ndjson by hand, or set it)");
  return done;
}
