import { ELASTICSEARCH_URL, elasticsearchPid, elasticsearchReachable, startElasticsearch, stopElasticsearch } from "./elasticsearch.js";
import { KAFKA_BROKERS, kafkaPid, kafkaReachable, startKafka, stopKafka } from "./kafka.js";
import { ENGINES_DIR, paths } from "./paths.js";

export interface Engines {
  kafkaBrokers: string;
  elasticsearchUrl: string;
  /** Engines this call started (the others were already running or given by env). */
  started: ("kafka" | "elasticsearch")[];
}

const say = (m: string) => console.error(`[engines] ${m}`);

/**
 * Makes both engines reachable: the ones named by KAFKA_BROKERS / ELASTICSEARCH_URL are used as they are (and must
 * answer); otherwise the local engines are started, or reused when already up. Both start in parallel.
 */
export async function ensureEngines(env: NodeJS.ProcessEnv = process.env, log = say): Promise<Engines> {
  const started: Engines["started"] = [];
  const kafka = async () => {
    if (env.KAFKA_BROKERS) {
      if (!(await kafkaReachable(env.KAFKA_BROKERS)))
        throw new Error(`KAFKA_BROKERS=${env.KAFKA_BROKERS} is set but Kafka does not answer there`);
      log(`using Kafka at ${env.KAFKA_BROKERS} (KAFKA_BROKERS)`);
      return env.KAFKA_BROKERS;
    }
    const how = await startKafka(log);
    if (how === "started") started.push("kafka");
    log(`Kafka ${how === "started" ? "started" : "already running (reused)"} at ${KAFKA_BROKERS}`);
    return KAFKA_BROKERS;
  };
  const elasticsearch = async () => {
    if (env.ELASTICSEARCH_URL) {
      if (!(await elasticsearchReachable(env.ELASTICSEARCH_URL)))
        throw new Error(`ELASTICSEARCH_URL=${env.ELASTICSEARCH_URL} is set but Elasticsearch does not answer there`);
      log(`using Elasticsearch at ${env.ELASTICSEARCH_URL} (ELASTICSEARCH_URL)`);
      return env.ELASTICSEARCH_URL;
    }
    const how = await startElasticsearch(log);
    if (how === "started") started.push("elasticsearch");
    log(`Elasticsearch ${how === "started" ? "started" : "already running (reused)"} at ${ELASTICSEARCH_URL}`);
    return ELASTICSEARCH_URL;
  };
  const [kafkaBrokers, elasticsearchUrl] = await Promise.all([kafka(), elasticsearch()]);
  return { kafkaBrokers, elasticsearchUrl, started };
}

export async function stopEngines(
  which: ("kafka" | "elasticsearch")[] = ["kafka", "elasticsearch"],
  options: { purge?: boolean } = {},
  log = say,
): Promise<void> {
  await Promise.all(
    which.map(async (engine) => {
      const stopped = engine === "kafka" ? await stopKafka() : await stopElasticsearch(options);
      log(`${engine}: ${stopped ? "stopped" : "was not running"}`);
    }),
  );
}

export async function engineStatus(): Promise<{ engine: string; address: string; pid?: number; reachable: boolean }[]> {
  const [kafkaUp, esUp] = await Promise.all([kafkaReachable(), elasticsearchReachable()]);
  return [
    { engine: "kafka", address: KAFKA_BROKERS, pid: kafkaPid(), reachable: kafkaUp },
    { engine: "elasticsearch", address: ELASTICSEARCH_URL, pid: elasticsearchPid(), reachable: esUp },
  ];
}

export { ENGINES_DIR, paths };
