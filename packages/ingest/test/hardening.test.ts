import { mkdtempSync, readdirSync, statSync, writeFileSync } from "node:fs";
import { connect, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect as tlsConnect } from "node:tls";
import { createLogger, MemoryBus } from "@k8s-audit/core";
import { Agent, request } from "undici";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import {
  certificateClusters,
  checkIngestConfig,
  createCertificateAuthority,
  createIngestServer,
  type IngestOptions,
  issueCertificate,
  type Pem,
  Spool,
  TokenSet,
} from "../src/index.js";

const topics = { events: "events", alerts: "alerts", deadLetter: "dlq" };
const logger = createLogger({ level: "silent" });

let app: ReturnType<typeof createIngestServer> | undefined;
afterEach(async () => {
  await app?.close();
  app = undefined;
});

async function listen(options: Partial<IngestOptions> = {}) {
  app = createIngestServer({ bus: new MemoryBus(), topics, logger, defaultCluster: "d", ...options });
  await app.listen({ host: "127.0.0.1", port: 0 });
  return (app.server.address() as { port: number }).port;
}

/** Resolves with how long the server took to close the socket, and what it sent first. */
function closed(socket: Socket): Promise<{ afterMs: number; received: string; error?: string }> {
  const start = Date.now();
  let received = "";
  let error: string | undefined;
  socket.on("data", (d) => {
    received += d.toString();
  });
  socket.on("error", (e) => {
    error = e.message;
  });
  return new Promise((resolve) => socket.on("close", () => resolve({ afterMs: Date.now() - start, received, error })));
}

const raw = (port: number, localAddress = "127.0.0.1") => connect({ port, host: "127.0.0.1", localAddress });

describe("ingest hardening on real sockets", () => {
  let pki: { dir: string; ca: Pem; client: Pem; files: { cert: string; key: string; ca: string } };
  beforeAll(() => {
    const dir = mkdtempSync(join(tmpdir(), "ingest-pki-"));
    const ca = createCertificateAuthority("test CA");
    const server = issueCertificate(ca, { commonName: "localhost", altNames: ["127.0.0.1"], usage: "server" });
    const client = issueCertificate(ca, { commonName: "kube-apiserver", organizationalUnit: "prod-1", usage: "client" });
    const files = { cert: join(dir, "s.crt"), key: join(dir, "s.key"), ca: join(dir, "ca.crt") };
    writeFileSync(files.cert, server.cert);
    writeFileSync(files.key, server.key);
    writeFileSync(files.ca, ca.cert);
    pki = { dir, ca, client, files };
  });

  it("with mTLS alone, a client without a certificate fails the TLS handshake and never reaches HTTP", async () => {
    const port = await listen({ tls: { cert: pki.files.cert, key: pki.files.key, clientCa: pki.files.ca } });
    const socket = tlsConnect({ port, host: "127.0.0.1", ca: pki.ca.cert, servername: "localhost" }, () => {
      socket.write("POST /audit HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 67108864\r\n\r\n{");
    });
    const result = await closed(socket);
    expect(result.received).toBe("");
    expect(result.error).toMatch(/certificate required|handshake|alert/i);
    expect(result.afterMs).toBeLessThan(1000);
    expect((await app?.metrics.tlsHandshakeFailures.get())?.values[0]?.value).toBe(1);
    // ... while a client with one gets in.
    const ok = tlsConnect(
      { port, host: "127.0.0.1", ca: pki.ca.cert, cert: pki.client.cert, key: pki.client.key, servername: "localhost" },
      () => ok.end("GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
    );
    expect((await closed(ok)).received).toMatch(/^HTTP\/1.1 200/);
  });

  it("with mTLS and tokens, takes a valid certificate (its cluster is authoritative) or a token, and refuses neither with both reasons", async () => {
    const port = await listen({
      tls: { cert: pki.files.cert, key: pki.files.key, clientCa: pki.files.ca },
      tokens: new TokenSet([{ token: "t", clusters: ["tok-cluster"] }]),
    });
    const url = `https://127.0.0.1:${port}/audit`;
    const post = async (agent: Agent, headers: Record<string, string> = {}, path = "") => {
      const res = await request(`${url}${path}`, {
        method: "POST",
        dispatcher: agent,
        headers: { "content-type": "application/json", ...headers },
        body: JSON.stringify({
          level: "Metadata",
          auditID: `x${Math.random()}`,
          stage: "ResponseComplete",
          requestURI: "/",
          verb: "get",
          user: { username: "u" },
          stageTimestamp: "2026-01-01T00:00:00.000001Z",
        }),
      });
      return { status: res.statusCode, body: (await res.body.json()) as { error?: string } };
    };
    const withCert = new Agent({ connect: { ca: pki.ca.cert, cert: pki.client.cert, key: pki.client.key, servername: "localhost" } });
    const without = new Agent({ connect: { ca: pki.ca.cert, servername: "localhost" } });
    expect((await post(withCert)).status).toBe(200);
    expect((await post(withCert, {}, "/prod-1")).status).toBe(200);
    // The certificate's binding applies even when a token for another cluster rides along.
    expect((await post(withCert, { authorization: "Bearer t" }, "/tok-cluster")).status).toBe(403);
    expect((await post(without, { authorization: "Bearer t" }, "/tok-cluster")).status).toBe(200);
    const neither = await post(without);
    expect(neither.status).toBe(401);
    expect(neither.body.error).toBe("no client certificate; and no valid bearer token");
    await Promise.all([withCert.close(), without.close()]);
  });

  it("answers 401 to a token-mode request declaring 64 MiB at once, and closes without reading the body", async () => {
    const port = await listen({ tokens: new TokenSet([{ token: "t", clusters: ["a"] }]) });
    const socket = raw(port);
    socket.write('POST /audit HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 67108864\r\n\r\n{"items":[');
    const result = await closed(socket);
    expect(result.received).toMatch(/^HTTP\/1.1 401 /);
    expect(result.received).toMatch(/connection: close/i);
    expect(result.afterMs).toBeLessThan(1000);
    expect((await app?.metrics.inflightBytes.get())?.values[0]?.value).toBe(0);
  });

  it("answers a malformed batch 400 and keeps the connection for the next one (no new handshake per broken batch)", async () => {
    const port = await listen();
    const socket = raw(port);
    const valid = JSON.stringify({
      level: "Metadata",
      auditID: "k",
      stage: "ResponseComplete",
      requestURI: "/",
      verb: "get",
      user: { username: "u" },
      stageTimestamp: "2026-01-01T00:00:00.000001Z",
    });
    const req = (body: string) =>
      `POST /audit HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
    socket.write(req('{"items":[') + req(valid));
    let received = "";
    socket.on("data", (d) => {
      received += d.toString();
    });
    await new Promise((r) => setTimeout(r, 300));
    expect(received.match(/HTTP\/1.1 \d+/g)).toEqual(["HTTP/1.1 400", "HTTP/1.1 200"]);
    expect(socket.destroyed).toBe(false);
    socket.destroy();
  });

  it("closes connections with partial headers within the headers timeout, and silent TLS connections too", async () => {
    const port = await listen({ headersTimeoutMs: 1000 });
    const partial = raw(port);
    partial.write("POST /audit HTTP/1.1\r\nHost: x\r\nContent-Le");
    const silent = raw(port);
    const [a, b] = await Promise.all([closed(partial), closed(silent)]);
    for (const r of [a, b]) {
      expect(r.afterMs).toBeGreaterThanOrEqual(900);
      expect(r.afterMs).toBeLessThan(1000 + 400);
    }
    await app?.close();
    const tlsPort = await listen({ headersTimeoutMs: 1000, tls: { cert: pki.files.cert, key: pki.files.key, clientCa: pki.files.ca } });
    const noHello = await closed(raw(tlsPort));
    expect(noHello.afterMs).toBeLessThan(1000 + 400);
  });

  it("caps connections per client address and in total, at accept", async () => {
    const port = await listen({ maxConnectionsPerClient: 3, maxConnections: 5 });
    const open: Socket[] = [];
    const opened = (s: Socket) => new Promise<void>((r) => s.on("connect", () => r()));
    for (let i = 0; i < 3; i++) open.push(raw(port));
    await Promise.all(open.map(opened));
    const fourth = await closed(raw(port));
    expect(fourth.afterMs).toBeLessThan(500);
    // Another address still gets in, up to the total.
    const other = [raw(port, "127.0.0.2"), raw(port, "127.0.0.2")];
    await Promise.all(other.map(opened));
    await new Promise((r) => setTimeout(r, 100));
    expect(other.every((s) => !s.destroyed)).toBe(true);
    expect((await closed(raw(port, "127.0.0.3"))).afterMs).toBeLessThan(500);
    const refused = (await app?.metrics.connectionsRefused.get())?.values.map((v) => [v.labels.reason, v.value]);
    expect(refused).toEqual([
      ["per_client", 1],
      ["total", 1],
    ]);
    for (const s of [...open, ...other]) s.destroy();
  });

  it("cuts an authenticated body that trickles slower than the floor; a normal one passes", async () => {
    const port = await listen({ minBodyBytesPerSecond: 1000, bodyRateWindowMs: 1000 });
    const slow = raw(port);
    slow.write("POST /audit HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n[");
    const trickle = setInterval(() => slow.write(" "), 100);
    const result = await closed(slow);
    clearInterval(trickle);
    expect(result.afterMs).toBeLessThan(3000);
    expect((await app?.metrics.slowBodiesCut.get())?.values[0]?.value).toBe(1);
    const res = await fetch(`http://127.0.0.1:${port}/audit`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        level: "Metadata",
        auditID: "x",
        stage: "ResponseComplete",
        requestURI: "/",
        verb: "get",
        user: { username: "u" },
        stageTimestamp: "2026-01-01T00:00:00.000001Z",
      }),
    });
    expect(res.status).toBe(200);
  });

  it("keeps the spool private: folder 0700, segments 0600", async () => {
    const dir = join(mkdtempSync(join(tmpdir(), "spool-perm-")), "spool");
    const spool = new Spool(dir, 1024 * 1024, new MemoryBus(), logger);
    await spool.append([{ topic: "t", messages: [{ value: "{}" }] }]);
    expect(statSync(dir).mode & 0o777).toBe(0o700);
    for (const f of readdirSync(dir)) expect(statSync(join(dir, f)).mode & 0o777).toBe(0o600);
    await spool.stop();
  });
});

describe("checkIngestConfig: safe defaults", () => {
  const base = {
    K8S_AUDIT_TLS_CERT: undefined,
    K8S_AUDIT_TLS_KEY: undefined,
    K8S_AUDIT_TLS_CLIENT_CA: undefined,
    K8S_AUDIT_TLS_ALLOWED_SUBJECTS: undefined,
    K8S_AUDIT_TOKENS_FILE: undefined,
    K8S_AUDIT_ALLOW_PLAIN_HTTP: false,
    K8S_AUDIT_ALLOW_UNAUTHENTICATED: false,
  } as Parameters<typeof checkIngestConfig>[0];
  const tls = { K8S_AUDIT_TLS_CERT: "c", K8S_AUDIT_TLS_KEY: "k" };

  it("lets loopback run without TLS or authentication", () => {
    expect(checkIngestConfig(base, "127.0.0.1")).toEqual({ warnings: [] });
  });

  it("refuses a client CA without a serving certificate, anywhere", () => {
    expect(checkIngestConfig({ ...base, K8S_AUDIT_TLS_CLIENT_CA: "ca" }, "127.0.0.1").error).toMatch(
      /K8S_AUDIT_TLS_CLIENT_CA is set but K8S_AUDIT_TLS_CERT and K8S_AUDIT_TLS_KEY are not/,
    );
    expect(checkIngestConfig({ ...base, K8S_AUDIT_TLS_CERT: "c" }, "127.0.0.1").error).toMatch(/go together/);
  });

  it("off loopback: refuses plain HTTP, and TLS without client authentication, unless opted out by name", () => {
    expect(checkIngestConfig(base, "0.0.0.0").error).toMatch(/refusing plain HTTP/);
    expect(checkIngestConfig({ ...base, ...tls }, "0.0.0.0").error).toMatch(/K8S_AUDIT_ALLOW_UNAUTHENTICATED=true/);
    const optedOut = checkIngestConfig({ ...base, ...tls, K8S_AUDIT_ALLOW_UNAUTHENTICATED: true }, "0.0.0.0");
    expect(optedOut.error).toBeUndefined();
    expect(optedOut.warnings[0]).toMatch(/anyone who reaches the ingest/);
    expect(checkIngestConfig({ ...base, ...tls, K8S_AUDIT_TOKENS_FILE: "t" }, "0.0.0.0")).toEqual({ warnings: [] });
  });

  it("warns that every certificate of the CA is accepted without an allowed-subjects list", () => {
    const mtls = { ...base, ...tls, K8S_AUDIT_TLS_CLIENT_CA: "ca" };
    expect(checkIngestConfig(mtls, "0.0.0.0").warnings[0]).toMatch(/every client certificate the CA signed is accepted/);
    expect(checkIngestConfig({ ...mtls, K8S_AUDIT_TLS_ALLOWED_SUBJECTS: ["kube-apiserver"] }, "0.0.0.0").warnings).toEqual([]);
  });
});

describe("certificateClusters", () => {
  const cert = (subject: Record<string, string | string[]>, subjectaltname?: string) =>
    ({ subject, ...(subjectaltname ? { subjectaltname } : {}) }) as unknown as Parameters<typeof certificateClusters>[0];

  it("binds a certificate to its OU values and k8s-audit://cluster/<name> SAN URIs; none means the default cluster", () => {
    expect(certificateClusters(cert({ CN: "x", OU: "prod-1" }), "d")).toEqual({ clusters: ["prod-1"] });
    expect(certificateClusters(cert({ CN: "x", OU: ["a", "b"] }, "DNS:host, URI:k8s-audit://cluster/c, URI:https://other"), "d")).toEqual({
      clusters: ["a", "b", "c"],
    });
    expect(certificateClusters(cert({ CN: "x" }), "d")).toEqual({ clusters: ["d"] });
    expect(certificateClusters(cert({ CN: "x", OU: "Platform Team" }), "d")).toEqual({
      reason: expect.stringMatching(/names cluster "Platform Team", not a valid cluster name/),
    });
  });
});
