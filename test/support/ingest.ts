import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { KafkaBus, type Topics } from "@k8s-audit/core";
import { createCertificateAuthority, createIngestServer, type IngestOptions, issueCertificate, type Pem, Spool } from "@k8s-audit/ingest";
import { Agent, request } from "undici";
import { quietLogger, uniqueTopics } from "./kafka.js";

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

/** An ingest server on its own Kafka producer and topics; `spoolDir` gives it a spool (drained every 250 ms when down). */
export async function startTestIngest(brokers: string, options: Partial<IngestOptions> & { spoolDir?: string } = {}) {
  const topics: Topics = uniqueTopics("e2e-ingest");
  const bus = new KafkaBus({ brokers: brokers.split(","), clientId: "e2e-ingest", logger: quietLogger });
  await bus.ensureTopics(Object.values(topics));
  const spool = options.spoolDir ? new Spool(options.spoolDir, 64 * 1024 * 1024, bus, quietLogger) : undefined;
  spool?.start(250);
  const app = createIngestServer({ bus, topics, logger: quietLogger, defaultCluster: "default", ...options, spool });
  await app.listen({ host: "127.0.0.1", port: 0 });
  const port = (app.server.address() as { port: number }).port;
  return {
    topics,
    bus,
    app,
    url: `${options.tls ? "https" : "http"}://127.0.0.1:${port}/audit`,
    spool,
    stop: async () => {
      await app.close();
      await spool?.stop();
      await bus.close();
    },
  };
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
