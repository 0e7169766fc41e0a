import { copyFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { connect } from "node:tls";
import { issueCertificate } from "@k8s-audit/ingest";
import { auditEvent, eventList, readTopic } from "@k8s-audit/testkit";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { makeTestPki, postJson, startTestIngest, type TestPki, tlsAgent } from "../support/ingest.js";

/** Who may talk to the ingest: mTLS (CA, expiry, subject) and bearer tokens, with rotation, on the real Kafka. */
describe("ingest authentication", () => {
  const brokers = inject("kafkaBrokers");
  let pki: TestPki;
  beforeAll(() => {
    pki = makeTestPki();
  });

  describe("mTLS", () => {
    let ingest: Awaited<ReturnType<typeof startTestIngest>>;
    beforeAll(async () => {
      ingest = await startTestIngest(brokers, {
        tls: { ...pki.serverFiles, clientCa: pki.caFile, allowedSubjects: ["kube-apiserver"] },
      });
    });
    afterAll(() => ingest.stop());

    it("accepts a client certificate from the configured CA and takes the cluster from its OU", async () => {
      const event = auditEvent();
      const res = await postJson(ingest.url, eventList([event]), { dispatcher: tlsAgent(pki, pki.client) });
      expect(res.status).toBe(200);
      const [stored] = await readTopic(brokers, ingest.topics.events, 1);
      expect(stored?.key).toBe(`prod-1/${event.auditID}`);
    });

    it.each([
      ["no certificate", undefined],
      ["a certificate from an unknown CA", "strangerClient"],
      ["an expired certificate", "expiredClient"],
    ] as const)("refuses %s in the TLS handshake: the client never gets HTTP", async (_what, which) => {
      const client = which ? pki[which] : undefined;
      const failuresBefore = (await ingest.app.metrics.tlsHandshakeFailures.get()).values[0]?.value ?? 0;
      const agent = tlsAgent(pki, client);
      await expect(postJson(ingest.url, eventList([auditEvent()]), { dispatcher: agent })).rejects.toThrow(
        /certificate|alert|socket|other side closed|ECONNRESET/i,
      );
      await agent.close();
      await expect.poll(async () => (await ingest.app.metrics.tlsHandshakeFailures.get()).values[0]?.value ?? 0).toBe(failuresBefore + 1);
    });

    it("rejects a certificate of the CA whose subject is not allowed with 401 and the reason", async () => {
      const res = await postJson(ingest.url, eventList([auditEvent()]), { dispatcher: tlsAgent(pki, pki.otherSubject) });
      expect(res.status).toBe(401);
      expect(res.body.error).toMatch(/subject CN=someone-else is not allowed/);
    });

    it("binds the certificate to the cluster in its OU: another cluster by header or path gets 403", async () => {
      const agent = tlsAgent(pki, pki.client);
      const byHeader = await postJson(ingest.url, eventList([auditEvent()]), {
        dispatcher: agent,
        headers: { "x-k8s-audit-cluster": "prod-2" },
      });
      expect(byHeader.status).toBe(403);
      expect(byHeader.body.error).toBe('client certificate CN=kube-apiserver may write cluster "prod-1", not "prod-2"');
      expect(byHeader.headers.connection).toBe("close");
      const byPath = await postJson(`${ingest.url}/prod-2`, eventList([auditEvent()]), { dispatcher: agent });
      expect(byPath.status).toBe(403);
      const own = await postJson(`${ingest.url}/prod-1`, eventList([auditEvent()]), { dispatcher: agent });
      expect(own.status).toBe(200);
      await agent.close();
    });
  });

  describe("bearer tokens and rotation", () => {
    let ingest: Awaited<ReturnType<typeof startTestIngest>>;
    let tokensFile: string;
    let certFile: string;
    let keyFile: string;
    beforeAll(async () => {
      tokensFile = join(pki.dir, "tokens");
      certFile = join(pki.dir, "rotating.crt");
      keyFile = join(pki.dir, "rotating.key");
      writeFileSync(tokensFile, "# apiserver tokens\ntoken-one\ntoken-a cluster-a\n");
      copyFileSync(pki.serverFiles.cert, certFile);
      copyFileSync(pki.serverFiles.key, keyFile);
      ingest = await startTestIngest(brokers, { tls: { cert: certFile, key: keyFile }, tokensFile, reloadIntervalMs: 100 });
    });
    afterAll(() => ingest.stop());

    it("accepts a listed token and rejects a wrong or missing one", async () => {
      const agent = tlsAgent(pki);
      expect((await postJson(ingest.url, auditEvent(), { dispatcher: agent, headers: { authorization: "Bearer token-one" } })).status).toBe(
        200,
      );
      const wrong = await postJson(ingest.url, auditEvent(), { dispatcher: agent, headers: { authorization: "Bearer token-two" } });
      expect(wrong.status).toBe(401);
      expect(wrong.body.error).toBe("missing or invalid bearer token");
      expect((await postJson(ingest.url, auditEvent(), { dispatcher: agent })).status).toBe(401);
    });

    it("binds a token to its clusters: the token for cluster-a posting to cluster-b gets 403 before its body is read", async () => {
      const agent = tlsAgent(pki);
      const auth = { dispatcher: agent, headers: { authorization: "Bearer token-a" } };
      const other = await postJson(`${ingest.url}/cluster-b`, auditEvent(), auth);
      expect(other.status).toBe(403);
      expect(other.body.error).toBe('bearer token may write cluster "cluster-a", not "cluster-b"');
      const own = await postJson(`${ingest.url}/cluster-a`, auditEvent(), auth);
      expect(own.status).toBe(200);
      // A bare (legacy) token line writes the default cluster only.
      expect(
        (await postJson(`${ingest.url}/cluster-a`, auditEvent(), { dispatcher: agent, headers: { authorization: "Bearer token-one" } }))
          .status,
      ).toBe(403);
      await agent.close();
    });

    it("picks up a rotated token file and serving certificate without a restart or dropping connections", async () => {
      const agent = tlsAgent(pki); // keeps its connection alive across the rotation
      const auth = (t: string) => ({ dispatcher: agent, headers: { authorization: `Bearer ${t}` } });
      let handshakes = 0;
      ingest.app.server.on("secureConnection", () => handshakes++);
      expect((await postJson(ingest.url, auditEvent(), auth("token-one"))).status).toBe(200);
      const before = await servedSerial(ingest.url);
      await new Promise((r) => setTimeout(r, 200)); // the server counts that probe's handshake a moment after the client
      const handshakesBeforeRotation = handshakes;

      const rotated = issueCertificate(pki.ca, { commonName: "localhost", altNames: ["localhost", "127.0.0.1"], usage: "server" });
      writeFileSync(keyFile, rotated.key);
      writeFileSync(certFile, rotated.cert);
      writeFileSync(tokensFile, "token-one\ntoken-two\n");
      await new Promise((r) => setTimeout(r, 1000));

      // the connection opened before the rotation still works (no new handshake), and new handshakes get the new certificate
      expect((await postJson(ingest.url, auditEvent(), auth("token-two"))).status).toBe(200);
      expect(handshakes).toBe(handshakesBeforeRotation);
      const after = await servedSerial(ingest.url);
      expect(after).not.toBe(before);
      writeFileSync(tokensFile, "token-two\n");
      await new Promise((r) => setTimeout(r, 1000));
      expect((await postJson(ingest.url, auditEvent(), auth("token-one"))).status).toBe(401);
      expect((await postJson(ingest.url, auditEvent(), auth("token-two"))).status).toBe(200);
      await agent.close();
    });
  });
});

function servedSerial(url: string): Promise<string> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = connect({ host: hostname, port: Number(port), rejectUnauthorized: false }, () => {
      const serial = socket.getPeerCertificate().serialNumber;
      socket.end();
      resolve(serial);
    });
    socket.once("error", reject);
  });
}
