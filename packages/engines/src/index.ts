export { ELASTICSEARCH_URL, elasticsearchReachable, startElasticsearch, stopElasticsearch } from "./elasticsearch.js";
export { KAFKA_BROKERS, kafkaReachable, startKafka, stopKafka } from "./kafka.js";
export { ELASTICSEARCH_VERSION, KAFKA_VERSION } from "./paths.js";
export { type Engines, engineStatus, ensureEngines, ENGINES_DIR, stopEngines } from "./services.js";
export { EngineError } from "./system.js";
