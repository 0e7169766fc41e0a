import { spawn } from "node:child_process";
import { existsSync, mkdirSync, openSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { createLogger, KafkaBus } from "@k8s-audit/core";
import { fetchWithDependencies } from "./maven.js";
import { ENGINES_DIR, KAFKA_CONTROLLER_PORT, KAFKA_PORT, KAFKA_VERSION, paths } from "./paths.js";
import { EngineError, findJdk, pidsMatching, portOpen, readPid, run, terminate, waitFor } from "./system.js";

export const KAFKA_BROKERS = `127.0.0.1:${KAFKA_PORT}`;
const LOG_FILE = join(paths.logs, "kafka.log");

export async function kafkaReachable(brokers = KAFKA_BROKERS): Promise<boolean> {
  const first = brokers.split(",")[0] ?? "";
  const [host, port] = [first.slice(0, first.lastIndexOf(":")), Number(first.slice(first.lastIndexOf(":") + 1))];
  if (!(await portOpen(port, host))) return false;
  const bus = new KafkaBus({ brokers: brokers.split(","), clientId: "k8s-audit-engines", logger: createLogger({ level: "silent" }) });
  try {
    return await bus.ping();
  } finally {
    await bus.close();
  }
}

function install(log: (m: string) => void): void {
  if (existsSync(join(paths.kafkaLibs, `kafka_2.13-${KAFKA_VERSION}.jar`))) return;
  log(`fetching org.apache.kafka:kafka_2.13:${KAFKA_VERSION} and its runtime dependencies from Maven Central`);
  fetchWithDependencies(
    paths.kafkaPom,
    [
      `org.apache.kafka:kafka_2.13:${KAFKA_VERSION}`,
      // Kafka logs through slf4j 1.x; this routes it to log4j2 so the broker's log lands in our log file.
      "org.apache.logging.log4j:log4j-slf4j-impl:2.24.3",
    ],
    paths.kafkaLibs,
  );
}

function writeConfig(): void {
  writeFileSync(
    paths.kafkaConfig,
    [
      "# Written by k8s-audit engines: a single KRaft broker+controller on loopback, for tests and development.",
      "process.roles=broker,controller",
      "node.id=1",
      `controller.quorum.voters=1@127.0.0.1:${KAFKA_CONTROLLER_PORT}`,
      `listeners=PLAINTEXT://127.0.0.1:${KAFKA_PORT},CONTROLLER://127.0.0.1:${KAFKA_CONTROLLER_PORT}`,
      `advertised.listeners=PLAINTEXT://127.0.0.1:${KAFKA_PORT}`,
      "controller.listener.names=CONTROLLER",
      "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
      "inter.broker.listener.name=PLAINTEXT",
      `log.dirs=${paths.kafkaData}`,
      "num.partitions=3",
      "offsets.topic.replication.factor=1",
      "transaction.state.log.replication.factor=1",
      "transaction.state.log.min.isr=1",
      "share.coordinator.state.topic.replication.factor=1",
      "share.coordinator.state.topic.min.isr=1",
      "group.initial.rebalance.delay.ms=0",
      "auto.create.topics.enable=true",
      "log.retention.hours=24",
      "",
    ].join("\n"),
  );
  writeFileSync(
    paths.kafkaLog4j,
    `Configuration:
  Appenders:
    File:
      name: file
      fileName: ${join(paths.logs, "kafka-server.log")}
      PatternLayout: { pattern: "[%d] %p %m (%c)%n" }
  Loggers:
    Root:
      level: INFO
      AppenderRef: [{ ref: file }]
`,
  );
}

export async function startKafka(log: (m: string) => void): Promise<"started" | "reused"> {
  if (readPid(paths.kafkaPid) && (await kafkaReachable())) return "reused";
  if (await portOpen(KAFKA_PORT)) {
    if (await kafkaReachable()) return "reused";
    throw new EngineError(`port ${KAFKA_PORT} is in use by something that is not Kafka; stop it or set K8S_AUDIT_KAFKA_PORT`);
  }
  if (await portOpen(KAFKA_CONTROLLER_PORT)) {
    throw new EngineError(`port ${KAFKA_CONTROLLER_PORT} (Kafka controller) is in use; stop it or set K8S_AUDIT_KAFKA_CONTROLLER_PORT`);
  }
  const jdk = findJdk("Kafka 4", 17, Number.POSITIVE_INFINITY, "KAFKA_JAVA_HOME");
  install(log);
  for (const dir of [paths.logs, paths.run, paths.kafkaData]) mkdirSync(dir, { recursive: true });
  writeConfig();
  const java = join(jdk.home, "bin", "java");
  const classpath = `${paths.kafkaLibs}/*`;
  if (!existsSync(join(paths.kafkaData, "meta.properties"))) {
    // Storage is formatted once; later starts reuse the data (topics and offsets survive restarts, like a real broker).
    const id = run(java, ["-cp", classpath, "kafka.tools.StorageTool", "random-uuid"]).output.trim().split("\n").pop() ?? "";
    const r = run(java, [
      "-cp",
      classpath,
      `-Dlog4j2.configurationFile=${paths.kafkaLog4j}`,
      "kafka.tools.StorageTool",
      "format",
      "-t",
      id,
      "-c",
      paths.kafkaConfig,
    ]);
    if (r.status !== 0) throw new EngineError(`formatting Kafka storage failed:\n${r.output}`);
  }
  log(`starting Kafka ${KAFKA_VERSION} (KRaft) on ${KAFKA_BROKERS} with Java ${jdk.major}; log: ${LOG_FILE}`);
  const out = openSync(LOG_FILE, "a");
  const child = spawn(
    java,
    [
      "-Xms256m",
      "-Xmx768m",
      "-XX:+UseG1GC",
      "-Djava.awt.headless=true",
      `-Dlog4j2.configurationFile=${paths.kafkaLog4j}`,
      `-Dk8s.audit.engine=${ENGINES_DIR}`,
      "-cp",
      classpath,
      "kafka.Kafka",
      paths.kafkaConfig,
    ],
    { detached: true, stdio: ["ignore", out, out] },
  );
  child.unref();
  writeFileSync(paths.kafkaPid, String(child.pid));
  await waitFor(`Kafka on ${KAFKA_BROKERS}`, () => kafkaReachable(), 90_000, `${LOG_FILE} and ${join(paths.logs, "kafka-server.log")}`);
  return "started";
}

export async function stopKafka(): Promise<boolean> {
  const pids = new Set(pidsMatching(`-Dk8s.audit.engine=${ENGINES_DIR}`).filter((p) => p));
  const pid = readPid(paths.kafkaPid);
  if (pid) pids.add(pid);
  await terminate([...pids]);
  return pids.size > 0;
}

export function kafkaPid(): number | undefined {
  return readPid(paths.kafkaPid);
}
