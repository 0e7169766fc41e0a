import { randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import { connect, type Socket } from "node:net";
import { auditEvent, eventList } from "@k8s-audit/testkit";
import { Agent, request } from "undici";
import type { Pipeline } from "./harness.js";
import { sleep } from "./harness.js";

/**
 * What an attacker on the network (loopback only) throws at the ingest for `durationMs`, all at once:
 * - pre-auth slow bodies: connections declaring a 64 MiB body without credentials, then a byte every 2 s;
 * - slowloris: connections sending partial headers, a line every few seconds, never finishing;
 * - deep nesting: unauthenticated bodies nested 10,000 deep, and one authenticated batch with a legitimate event and
 *   an item nested 10,000 deep (the apiserver records patch bodies as sent) — which must be accepted;
 * - a 100 MB body without credentials;
 * - 10,000 malformed requests (half without credentials, half with the token but not JSON).
 */
export async function hostileMix(p: Pipeline, token: string, durationMs: number) {
  const port = p.port;
  const until = Date.now() + durationMs;
  const sockets: Socket[] = [];
  // The attackers come from other addresses than the apiserver (127.0.0.1), as they would on a network: the whole of
  // 127.0.0.0/8 is loopback, so each kind of attack gets its own source address.
  const SLOW_BODIES = "127.0.0.2";
  const SLOWLORIS = "127.0.0.3";
  const REQUESTS = "127.0.0.4";
  // (undici takes the port from each request's URL; the type wants one here.)
  const agent = new Agent({ connect: { localAddress: REQUESTS, port }, connections: 64 });
  const open = (localAddress: string): Socket => {
    const s = connect({ port, host: "127.0.0.1", localAddress });
    s.on("error", () => {});
    sockets.push(s);
    return s;
  };
  let maxRssMiB = 0;
  const rssTimer = setInterval(() => {
    const pid = p.ingest.pid;
    if (!pid) return;
    try {
      const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
      if (m) maxRssMiB = Math.max(maxRssMiB, Math.round(Number(m[1]) / 1024));
    } catch {
      // exited
    }
  }, 250);

  // Slow bodies before authentication.
  const slowBodies = (async () => {
    const conns = Array.from({ length: 8 }, () => {
      const s = open(SLOW_BODIES);
      s.write(
        `POST /audit/${p.cluster} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${64 * 1024 * 1024}\r\n\r\n{`,
      );
      return s;
    });
    while (Date.now() < until) {
      await sleep(2000);
      for (const s of conns) if (!s.destroyed) s.write(" ");
    }
  })();

  // Slowloris: partial headers.
  const slowloris = (async () => {
    const conns = Array.from({ length: 300 }, () => {
      const s = open(SLOWLORIS);
      s.write(`POST /audit/${p.cluster} HTTP/1.1\r\nHost: x\r\n`);
      return s;
    });
    let n = 0;
    while (Date.now() < until) {
      await sleep(3000);
      for (const s of conns) if (!s.destroyed) s.write(`X-Slow-${n}: ${n}\r\n`);
      n++;
    }
    return conns.filter((s) => !s.destroyed).length;
  })();

  // Deep nesting, without and with credentials.
  const deep = `${"[".repeat(10_000)}${"]".repeat(10_000)}`;
  const legit = auditEvent({ auditID: randomUUID() });
  const deepItem = auditEvent({
    auditID: randomUUID(),
    verb: "patch",
    requestObject: JSON.parse(`${'{"a":'.repeat(10_000)}1${"}".repeat(10_000)}`),
  });
  const post = async (body: string | Buffer, auth: boolean) => {
    try {
      const res = await request(`http://127.0.0.1:${port}/audit/${p.cluster}`, {
        method: "POST",
        body,
        headers: { "content-type": "application/json", ...(auth ? { authorization: `Bearer ${token}` } : {}) },
        headersTimeout: 30_000,
        bodyTimeout: 30_000,
        dispatcher: agent,
      });
      await res.body.dump();
      return res.statusCode;
    } catch {
      return 0;
    }
  };
  const deepStatuses = await Promise.all([
    post(`{"kind":"EventList","items":[${deep}]}`, false),
    post(`{"kind":"EventList","items":[${deep}]}`, false),
  ]);
  let deepBody: string;
  try {
    deepBody = JSON.stringify(eventList([legit, deepItem]));
  } catch {
    // Deeper than JSON.stringify goes: write it by hand.
    deepBody = `{"kind":"EventList","apiVersion":"audit.k8s.io/v1","items":[${JSON.stringify(legit)},${JSON.stringify({ ...deepItem, requestObject: null }).replace('"requestObject":null', `"requestObject":${`{"a":`.repeat(10_000)}1${"}".repeat(10_000)}`)}]}`;
  }
  const deepAuthStatus = await post(deepBody, true);

  // 100 MB without credentials.
  const bigStatus = await post(Buffer.alloc(100 * 1024 * 1024, 0x20), false);

  // 10,000 malformed requests, 50 at a time.
  const malformed: Record<string, number> = {};
  let sent = 0;
  await Promise.all(
    Array.from({ length: 50 }, async () => {
      while (sent < 10_000 && Date.now() < until + 30_000) {
        const i = sent++;
        const status = await post(i % 2 ? "{not json" : '{"kind":"EventList","items":[1,', i % 2 === 0);
        malformed[status] = (malformed[status] ?? 0) + 1;
      }
    }),
  );
  await slowBodies;
  const slowlorisOpen = await slowloris;
  clearInterval(rssTimer);
  const stillOpen = sockets.filter((s) => !s.destroyed).length;
  for (const s of sockets) s.destroy();
  await agent.close();
  const fmt = (o: Record<string, number>) =>
    Object.entries(o)
      .map(([k, v]) => `${k}×${v}`)
      .join(" ");
  return {
    deepAccepted: deepAuthStatus >= 200 && deepAuthStatus < 300,
    legitDeepAuditID: legit.auditID as string,
    maxRssMiB,
    summary: `hostile: deep unauth ${deepStatuses.join(",")}, deep auth ${deepAuthStatus}, 100 MB ${bigStatus}, malformed ${fmt(malformed)}, slowloris still open after ${Math.round(durationMs / 1000)} s ${slowlorisOpen}/300, attacker sockets open at end ${stillOpen}, ingest max RSS ${maxRssMiB} MiB`,
  };
}
