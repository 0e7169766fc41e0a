import { type Config, createBus, type Logger, topicsOf } from "@k8s-audit/core";
import { alertsDataStream, createElasticsearchClient, ensureAlertTemplate } from "@k8s-audit/shipper";

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
      await ensureAlertTemplate(es);
    } finally {
      await es.close();
    }
    done.push(`elasticsearch: index template installed for ${alertsDataStream(config.K8S_AUDIT_ES_NAMESPACE)}`);
  } else done.push("elasticsearch: ELASTICSEARCH_URL not set; skipped");
  return done;
}
