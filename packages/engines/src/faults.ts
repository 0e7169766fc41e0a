import { ELASTICSEARCH_URL, elasticsearchPids, elasticsearchReachable, startElasticsearch } from "./elasticsearch.js";
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

/** kill -9 of the broker: no controlled shutdown, its data folder stays as the crash left it. */
export async function killKafka(): Promise<number[]> {
  const pids = kafkaPids();
  for (const pid of pids) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // already gone
    }
  }
  await waitGone(pids, 10_000);
  return pids;
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

/**
 * SIGSTOP of every Elasticsearch process: the node is frozen (as in a long GC pause, a stalled VM or a hung disk). Its
 * port still accepts connections, but nothing answers: clients wait for their timeouts, the harshest case for a
 * shipper. SIGCONT resumes it with its state intact.
 */
export function pauseElasticsearch(): number[] {
  const pids = elasticsearchPids();
  for (const pid of pids) process.kill(pid, "SIGSTOP");
  return pids;
}

export async function resumeElasticsearch(pids: number[] = elasticsearchPids()): Promise<void> {
  for (const pid of pids) {
    try {
      process.kill(pid, "SIGCONT");
    } catch {
      // gone
    }
  }
  const deadline = Date.now() + 60_000;
  while (!(await elasticsearchReachable())) {
    if (Date.now() > deadline) throw new Error("Elasticsearch did not answer within 60 s of SIGCONT");
    await sleep(250);
  }
}

/** SIGSTOP / SIGCONT of the broker (a frozen broker: connections stay open, nothing is answered). */
export function pauseKafka(): number[] {
  const pids = kafkaPids();
  for (const pid of pids) process.kill(pid, "SIGSTOP");
  return pids;
}

export function resumeKafka(pids: number[]): void {
  for (const pid of pids) {
    try {
      process.kill(pid, "SIGCONT");
    } catch {
      // gone
    }
  }
}

/** kill -9 of every Elasticsearch process (no flush: the translog is what recovery replays). */
export async function killElasticsearch(): Promise<number[]> {
  const pids = elasticsearchPids();
  for (const pid of pids) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // already gone
    }
  }
  await waitGone(pids, 10_000);
  return pids;
}

/** Starts Elasticsearch again on the same data folder and waits until the cluster is at least yellow. */
export async function restartElasticsearch(log: (m: string) => void = () => {}): Promise<void> {
  await startElasticsearch(log);
}
