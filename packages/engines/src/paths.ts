import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

export const KAFKA_VERSION = process.env.K8S_AUDIT_KAFKA_VERSION ?? "4.4.0";
/** The newest integ-test-zip on Maven Central (9.x is not published there as of 2026-11). */
export const ELASTICSEARCH_VERSION = process.env.K8S_AUDIT_ES_VERSION ?? "8.19.21";

export const KAFKA_PORT = Number(process.env.K8S_AUDIT_KAFKA_PORT ?? 9092);
export const KAFKA_CONTROLLER_PORT = Number(process.env.K8S_AUDIT_KAFKA_CONTROLLER_PORT ?? 9093);
export const ES_PORT = Number(process.env.K8S_AUDIT_ES_PORT ?? 9200);
export const ES_TRANSPORT_PORT = Number(process.env.K8S_AUDIT_ES_TRANSPORT_PORT ?? 9300);

/** Unprivileged user Elasticsearch runs as when we are root (it refuses to start as root). */
export const ES_USER = "k8saudit-es";

function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, "pnpm-workspace.yaml"))) {
    const parent = dirname(dir);
    if (parent === dir) throw new Error("cannot find the repository root (pnpm-workspace.yaml)");
    dir = parent;
  }
  return dir;
}

/** Everything the engines download or write lives here (git-ignored). */
export const ENGINES_DIR = resolve(process.env.K8S_AUDIT_ENGINES_DIR ?? join(repoRoot(), ".engines"));

export const paths = {
  downloads: join(ENGINES_DIR, "downloads"),
  logs: join(ENGINES_DIR, "logs"),
  run: join(ENGINES_DIR, "run"),
  kafkaLibs: join(ENGINES_DIR, `kafka-${KAFKA_VERSION}`, "libs"),
  kafkaPom: join(ENGINES_DIR, `kafka-${KAFKA_VERSION}`, "pom.xml"),
  kafkaConfig: join(ENGINES_DIR, `kafka-${KAFKA_VERSION}`, "server.properties"),
  kafkaLog4j: join(ENGINES_DIR, `kafka-${KAFKA_VERSION}`, "log4j2.yaml"),
  kafkaData: join(ENGINES_DIR, "kafka-data"),
  kafkaPid: join(ENGINES_DIR, "run", "kafka.pid"),
  esZip: join(ENGINES_DIR, "downloads", `elasticsearch-${ELASTICSEARCH_VERSION}.zip`),
};

/**
 * Elasticsearch's own folder. It runs as an unprivileged user when we are root, and that user must be able to reach
 * the folder: a clone under a private directory (mktemp -d is 0700) is not reachable, so then it lives under /var/tmp,
 * keyed by the engines folder so two clones do not share state.
 */
export function esRoot(reachableByEsUser: (dir: string) => boolean): string {
  const inside = join(ENGINES_DIR, "elasticsearch");
  if (process.getuid?.() !== 0 || reachableByEsUser(ENGINES_DIR)) return inside;
  const key = createHash("sha256").update(ENGINES_DIR).digest("hex").slice(0, 10);
  return join("/var/tmp", `k8s-audit-engines-${key}`, "elasticsearch");
}
