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
  // The same steps for each engine: use the one named in the environment (it must answer), else start or reuse ours.
  const engine = async (e: {
    id: Engines["started"][number];
    name: string;
    variable: "KAFKA_BROKERS" | "ELASTICSEARCH_URL";
    reachable: (address: string) => Promise<boolean>;
    start: (log: (message: string) => void) => Promise<"started" | "reused">;
    local: string;
  }) => {
    const given = env[e.variable];
    if (given) {
      if (!(await e.reachable(given))) throw new Error(`${e.variable}=${given} is set but ${e.name} does not answer there`);
      log(`using ${e.name} at ${given} (${e.variable})`);
      return given;
    }
    const how = await e.start(log);
    if (how === "started") started.push(e.id);
    log(`${e.name} ${how === "started" ? "started" : "already running (reused)"} at ${e.local}`);
    return e.local;
  };
  const kafka = () =>
    engine({ id: "kafka", name: "Kafka", variable: "KAFKA_BROKERS", reachable: kafkaReachable, start: startKafka, local: KAFKA_BROKERS });
  const elasticsearch = () =>
    engine({
      id: "elasticsearch",
      name: "Elasticsearch",
      variable: "ELASTICSEARCH_URL",
      reachable: elasticsearchReachable,
      start: startElasticsearch,
      local: ELASTICSEARCH_URL,
    });
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
