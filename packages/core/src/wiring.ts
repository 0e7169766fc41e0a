import { KafkaBus } from "./bus/kafka.js";
import { MemoryBus } from "./bus/memory.js";
import type { Bus } from "./bus/types.js";
import type { Config } from "./config.js";
import type { Logger } from "./logger.js";

/** Kafka when KAFKA_BROKERS is set, the in-memory bus otherwise (the embedded default). */
export function createBus(config: Config, logger: Logger): Bus {
  if (config.KAFKA_BROKERS) {
    return new KafkaBus({
      brokers: config.KAFKA_BROKERS,
      clientId: config.KAFKA_CLIENT_ID,
      partitions: config.KAFKA_PARTITIONS,
      logger,
    });
  }
  return new MemoryBus({ logger, deadLetterTopic: config.K8S_AUDIT_TOPIC_DEADLETTER });
}
