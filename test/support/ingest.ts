import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { KafkaBus, loadConfig, runStages, type Topics } from "@k8s-audit/core";
import { createCertificateAuthority, type IngestOverrides, IngestStage, issueCertificate, type Pem } from "@k8s-audit/ingest";
import { quietLogger, uniqueTopics } from "@k8s-audit/testkit";
import { Agent, request } from "undici";

const DAY = 86_400_000;

/** Every certificate the ingest tests need, written by the project's own certs code. */
export function makeTestPki() {
  const dir = mkdtempSync(join(tmpdir(), "k8s-audit-pki-"));
  const ca = createCertificateAuthority("test CA");
  const otherCa = createCertificateAuthority("unknown CA");
  const server = issueCertificate(ca, { commonName: "localhost", altNames: ["localhost", "127.0.0.1"], usage: "server" });
  const client = issueCertificate(ca, { commonName: "kube-apiserver", organizationalUnit: "prod-1", usage: "client" });
  const strangerClient = issueCertificate(otherCa, { commonName: "kube-apiserver", usage: "client" });
  const expiredClient = issueCertificate(ca, {
    commonName: "kube-apiserver",
    usage: "client",
    notBefore: new Date(Date.now() - 30 * DAY),
    notAfter: new Date(Date.now() - DAY),
  });
  const otherSubject = issueCertificate(ca, { commonName: "someone-else", usage: "client" });
  const write = (name: string, pem: Pem) => {
    writeFileSync(join(dir, `${name}.crt`), pem.cert);
    writeFileSync(join(dir, `${name}.key`), pem.key);
    return { cert: join(dir, `${name}.crt`), key: join(dir, `${name}.key`) };
  };
  return {
    dir,
    ca,
    caFile: write("ca", ca).cert,
    serverFiles: write("server", server),
    client,
    strangerClient,
    expiredClient,
    otherSubject,
  };
}

export type TestPki = ReturnType<typeof makeTestPki>;

/**
 * An ingest stage on its own Kafka producer and topics, started through the same runner as the CLI's (runStages);
 * `spoolDir` gives it a spool (retried every 250 ms when Kafka is down), `dedup` its memory of recent events.
 */
export async function startTestIngest(
  brokers: string,
  options: IngestOverrides & { spoolDir?: string; topics?: Topics; dedup?: boolean } = {},
) {
  const { spoolDir, topics: given, dedup, ...overrides } = options;
  const topics: Topics = given ?? uniqueTopics("e2e-ingest");
  const bus = new KafkaBus({ brokers: brokers.split(","), clientId: "e2e-ingest", logger: quietLogger });
  await bus.ensureTopics(Object.values(topics));
  const config = loadConfig({
    K8S_AUDIT_LISTEN: "127.0.0.1:0",
    K8S_AUDIT_CLUSTER: "default",
    K8S_AUDIT_SPOOL_DIR: spoolDir,
    // No spool unless asked for: the tests of 503 + Retry-After need the ingest to refuse when Kafka is down.
    K8S_AUDIT_SPOOL_MAX_BYTES: spoolDir ? String(64 * 1024 * 1024) : "0",
    // Dedup (and its warm-up from the topic's tail) only when a test is about it.
    K8S_AUDIT_DEDUP_WINDOW_SECONDS: dedup ? undefined : "0",
  });
  const stage = new IngestStage({ ...overrides, spoolRetryMs: 250 });
  const running = await runStages([stage], { bus, topics, config, logger: quietLogger });
  const app = stage.server as NonNullable<IngestStage["server"]>;
  return { topics, bus, app, url: stage.url as string, spool: stage.spool, stop: () => running.stop() };
}

export function tlsAgent(pki: TestPki, client?: Pem): Agent {
  return new Agent({ connect: { ca: pki.ca.cert, ...(client ? { cert: client.cert, key: client.key } : {}) } });
}

export async function postJson(url: string, body: unknown, init: { dispatcher?: Agent; headers?: Record<string, string> } = {}) {
  const res = await request(url, {
    method: "POST",
    body: JSON.stringify(body),
    headers: { "content-type": "application/json", ...init.headers },
    ...(init.dispatcher ? { dispatcher: init.dispatcher } : {}),
  });
  const text = await res.body.text();
  return { status: res.statusCode, headers: res.headers, body: text ? JSON.parse(text) : undefined };
}
