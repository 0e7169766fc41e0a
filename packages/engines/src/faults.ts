import { ELASTICSEARCH_URL, elasticsearchPids, startElasticsearch } from "./elasticsearch.js";
import { KAFKA_BROKERS, kafkaReachable, startKafka } from "./kafka.js";
import { ENGINES_DIR, paths } from "./paths.js";
import { pidAlive, pidsMatching, readPid, sleep } from "./system.js";

/**
 * Faults for the fault suite (test/faults): the local engines killed, restarted and frozen as a crash, a host reboot
 * or a stalled node would. Only ever the engines of this engines folder (K8S_AUDIT_ENGINES_DIR), never a cluster
 * named by KAFKA_BROKERS / ELASTICSEARCH_URL.
 */

/** True when `brokers` / `url` are this folder's own running engines (so killing them is ours to do). */
export function ownsKafka(brokers: string): boolean {
  return brokers === KAFKA_BROKERS && kafkaPids().length > 0;
}

export function ownsElasticsearch(url: string): boolean {
  return url.replace(/\/$/, "") === ELASTICSEARCH_URL && elasticsearchPids().length > 0;
}

function kafkaPids(): number[] {
  const pids = new Set(pidsMatching(`-Dk8s.audit.engine=${ENGINES_DIR}`));
  const pid = readPid(paths.kafkaPid);
  if (pid) pids.add(pid);
  return [...pids];
}

async function waitGone(pids: number[], timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (pids.some(pidAlive)) {
    if (Date.now() > deadline) throw new Error(`processes ${pids.filter(pidAlive).join(",")} still alive after SIGKILL`);
    await sleep(50);
  }
}

/** Sends a signal to each process; one already gone is not an error. */
function signal(pids: number[], sig: NodeJS.Signals): void {
  for (const pid of pids) {
    try {
      process.kill(pid, sig);
    } catch {
      // already gone
    }
  }
}

/** kill -9: no controlled shutdown, the data folder stays as the crash left it. Waits until every process is gone. */
async function killAll(pids: number[]): Promise<number[]> {
  signal(pids, "SIGKILL");
  await waitGone(pids, 10_000);
  return pids;
}

/** kill -9 of the broker; its log recovery runs on the next start. */
export function killKafka(): Promise<number[]> {
  return killAll(kafkaPids());
}

/** Starts the broker again on the same data folder (log recovery after an unclean shutdown) and waits until it answers. */
export async function restartKafka(log: (m: string) => void = () => {}): Promise<void> {
  await startKafka(log);
  const deadline = Date.now() + 120_000;
  while (!(await kafkaReachable())) {
    if (Date.now() > deadline) throw new Error("Kafka did not come back within 120 s");
    await sleep(250);
  }
}

/** SIGSTOP / SIGCONT of the broker (a frozen broker: connections stay open, nothing is answered). */
export function pauseKafka(): number[] {
  const pids = kafkaPids();
  signal(pids, "SIGSTOP");
  return pids;
}

export function resumeKafka(pids: number[]): void {
  signal(pids, "SIGCONT");
}

/** kill -9 of every Elasticsearch process (no flush: the translog is what recovery replays). */
export function killElasticsearch(): Promise<number[]> {
  return killAll(elasticsearchPids());
}

/** Starts Elasticsearch again on the same data folder and waits until the cluster is at least yellow. */
export async function restartElasticsearch(log: (m: string) => void = () => {}): Promise<void> {
  await startElasticsearch(log);
}
