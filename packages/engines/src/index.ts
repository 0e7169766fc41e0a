export {
  ELASTICSEARCH_URL,
  elasticsearchPid,
  elasticsearchPids,
  elasticsearchReachable,
  startElasticsearch,
  stopElasticsearch,
} from "./elasticsearch.js";
export {
  killElasticsearch,
  killKafka,
  ownsElasticsearch,
  ownsKafka,
  pauseKafka,
  restartElasticsearch,
  restartKafka,
  resumeKafka,
} from "./faults.js";
export { KAFKA_BROKERS, kafkaPid, kafkaReachable, startKafka, stopKafka } from "./kafka.js";
export { ELASTICSEARCH_VERSION, KAFKA_VERSION } from "./paths.js";
export { ENGINES_DIR, type Engines, engineStatus, ensureEngines, stopEngines } from "./services.js";
export { EngineError } from "./system.js";
