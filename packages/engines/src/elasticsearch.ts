import { spawn } from "node:child_process";
import { chmodSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fetchArtifact } from "./maven.js";
import { ELASTICSEARCH_VERSION, ENGINES_DIR, ES_PORT, ES_TRANSPORT_PORT, ES_USER, esRoot, paths } from "./paths.js";
import { EngineError, findJdk, pidAlive, pidsMatching, portOpen, readPid, removeFile, run, terminate, waitFor, which } from "./system.js";

export const ELASTICSEARCH_URL = `http://127.0.0.1:${ES_PORT}`;
const isRoot = process.getuid?.() === 0;

function reachableByEsUser(dir: string): boolean {
  return run("runuser", ["-u", ES_USER, "--", "test", "-x", dir]).status === 0;
}

function layout() {
  // Once started, the folder chosen is remembered, so stop and status find the same one.
  const remembered = join(paths.run, "elasticsearch.root");
  const root = existsSync(remembered) ? readFileSync(remembered, "utf8").trim() : esRoot(reachableByEsUser);
  return {
    root,
    home: join(root, `elasticsearch-${ELASTICSEARCH_VERSION}`),
    data: join(root, "data"),
    logs: join(root, "logs"),
    pid: join(root, "elasticsearch.pid"),
  };
}

export async function elasticsearchReachable(url = ELASTICSEARCH_URL): Promise<boolean> {
  try {
    const res = await fetch(`${url}/_cluster/health?wait_for_status=yellow&timeout=1s`, { signal: AbortSignal.timeout(3000) });
    return res.ok && res.headers.get("x-elastic-product") === "Elasticsearch";
  } catch {
    return false;
  }
}

function ensureEsUser(): void {
  if (!isRoot) return;
  if (run("id", ["-u", ES_USER]).status === 0) return;
  const useradd = which("useradd");
  if (!useradd) throw new EngineError(`Elasticsearch refuses to run as root and useradd is missing to create the ${ES_USER} user`);
  const r = run(useradd, ["--system", "--no-create-home", "--shell", "/usr/sbin/nologin", ES_USER]);
  if (r.status !== 0 && run("id", ["-u", ES_USER]).status !== 0) throw new EngineError(`could not create user ${ES_USER}: ${r.output}`);
}

function install(home: string, log: (m: string) => void): void {
  if (existsSync(join(home, "bin", "elasticsearch"))) return;
  if (!existsSync(paths.esZip)) {
    log(`fetching org.elasticsearch.distribution.integ-test-zip:elasticsearch:${ELASTICSEARCH_VERSION}@zip from Maven Central`);
    fetchArtifact(`org.elasticsearch.distribution.integ-test-zip:elasticsearch:${ELASTICSEARCH_VERSION}:zip`, paths.downloads);
  }
  const parent = dirname(home);
  mkdirSync(parent, { recursive: true });
  rmSync(home, { recursive: true, force: true });
  if (which("unzip")) {
    const r = run("unzip", ["-q", "-o", paths.esZip, "-d", parent]);
    if (r.status !== 0) throw new EngineError(`unpacking ${paths.esZip} failed: ${r.output}`);
  } else {
    // jar keeps no file modes: restore the executable bits of the launch scripts.
    const r = run("jar", ["xf", paths.esZip], { cwd: parent });
    if (r.status !== 0) throw new EngineError(`unpacking ${paths.esZip} failed (install unzip): ${r.output}`);
    for (const f of readdirSync(join(home, "bin"))) chmodSync(join(home, "bin", f), 0o755);
  }
}

function configure(home: string, data: string, logs: string): void {
  writeFileSync(
    join(home, "config", "elasticsearch.yml"),
    [
      "# Written by k8s-audit engines: single node on loopback, security off (tests and development only).",
      "cluster.name: k8s-audit-dev",
      "node.name: k8s-audit-dev-1",
      "discovery.type: single-node",
      "network.host: 127.0.0.1",
      `http.port: ${ES_PORT}`,
      `transport.port: ${ES_TRANSPORT_PORT}`,
      `path.data: ${data}`,
      `path.logs: ${logs}`,
      "xpack.security.enabled: false",
      "action.destructive_requires_name: false",
      // A developer's disk may be fuller than the default 85–95 % watermarks; the test node must still accept writes.
      "cluster.routing.allocation.disk.threshold_enabled: false",
      "",
    ].join("\n"),
  );
  mkdirSync(join(home, "config", "jvm.options.d"), { recursive: true });
  writeFileSync(join(home, "config", "jvm.options.d", "k8s-audit.options"), "-Xms512m\n-Xmx1g\n");
}

export async function startElasticsearch(log: (m: string) => void): Promise<"started" | "reused"> {
  if (await elasticsearchReachable()) return "reused";
  if (await portOpen(ES_PORT)) {
    throw new EngineError(`port ${ES_PORT} is in use by something that is not Elasticsearch; stop it or set K8S_AUDIT_ES_PORT`);
  }
  if (await portOpen(ES_TRANSPORT_PORT)) {
    throw new EngineError(`port ${ES_TRANSPORT_PORT} (Elasticsearch transport) is in use; stop it or set K8S_AUDIT_ES_TRANSPORT_PORT`);
  }
  const major = Number(ELASTICSEARCH_VERSION.split(".")[0]);
  // ES 8 runs on 17–23 (it relies on the Security Manager, gone in 24); ES 9 needs 21 or newer.
  const jdk =
    major >= 9
      ? findJdk(`Elasticsearch ${ELASTICSEARCH_VERSION}`, 21, Number.POSITIVE_INFINITY, "ES_JAVA_HOME")
      : findJdk(`Elasticsearch ${ELASTICSEARCH_VERSION}`, 17, 23, "ES_JAVA_HOME");
  ensureEsUser();
  removeFile(join(paths.run, "elasticsearch.root"));
  const es = layout();
  mkdirSync(paths.downloads, { recursive: true });
  install(es.home, log);
  for (const dir of [es.data, es.logs, paths.logs, paths.run]) mkdirSync(dir, { recursive: true });
  configure(es.home, es.data, es.logs);
  if (isRoot) {
    const r = run("chown", ["-R", `${ES_USER}:`, es.root]);
    if (r.status !== 0) throw new EngineError(`chown of ${es.root} failed: ${r.output}`);
  }
  const logFile = join(paths.logs, "elasticsearch.log");
  log(`starting Elasticsearch ${ELASTICSEARCH_VERSION} on ${ELASTICSEARCH_URL} with Java ${jdk.major}; logs: ${logFile}, ${es.logs}`);
  const out = openSync(logFile, "a");
  const env = { ...process.env, ES_JAVA_HOME: jdk.home, ES_JAVA_OPTS: "-Xms512m -Xmx1g" };
  const launcher = join(es.home, "bin", "elasticsearch");
  const [cmd, args] = isRoot
    ? ["runuser", ["-u", ES_USER, "--", "env", `ES_JAVA_HOME=${jdk.home}`, "ES_JAVA_OPTS=-Xms512m -Xmx1g", launcher, "-p", es.pid]]
    : [launcher, ["-p", es.pid]];
  const child = spawn(cmd as string, args as string[], { detached: true, stdio: ["ignore", out, out], env, cwd: es.home });
  child.unref();
  writeFileSync(join(paths.run, "elasticsearch.root"), es.root);
  await waitFor(
    `Elasticsearch on ${ELASTICSEARCH_URL}`,
    async () => {
      if (child.exitCode !== null && !pidAlive(child.pid ?? -1))
        throw new EngineError(`Elasticsearch exited (code ${child.exitCode}); see ${logFile}`);
      return elasticsearchReachable();
    },
    180_000,
    logFile,
  );
  return "started";
}

/** Stops Elasticsearch; `purge` also removes its folder when it lives outside the engines folder (/var/tmp). */
export async function stopElasticsearch(options: { purge?: boolean } = {}): Promise<boolean> {
  const es = layout();
  const pids = new Set(pidsMatching(es.home));
  const pid = readPid(es.pid);
  if (pid) pids.add(pid);
  await terminate([...pids], 30_000);
  if (options.purge && !es.root.startsWith(ENGINES_DIR)) {
    rmSync(dirname(es.root), { recursive: true, force: true });
    removeFile(join(paths.run, "elasticsearch.root"));
  }
  return pids.size > 0;
}

/** Every process of our Elasticsearch: the launcher (and runuser) and the server JVM. */
export function elasticsearchPids(): number[] {
  const es = layout();
  const pids = new Set(pidsMatching(es.home));
  const pid = readPid(es.pid);
  if (pid) pids.add(pid);
  return [...pids];
}

export function elasticsearchPid(): number | undefined {
  return readPid(layout().pid) ?? pidsMatching(layout().home)[0];
}

export { ENGINES_DIR };
