import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { type AuditEvent, WebhookRejectedError } from "@k8s-audit/core";
import { afterEach, describe, expect, it } from "vitest";
import { WebhookSink } from "../src/index.js";

/** What the webhook does with each request, in turn: answer a status (with headers), or drop the connection. */
type Answer = { status: number; headers?: Record<string, string> } | "drop";

interface Received {
  authorization: string | undefined;
  body: { kind: string; items: AuditEvent[] };
}

const servers: Server[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => new Promise((r) => s.close(r))));
});

/** A real webhook on loopback that answers as scripted (the last answer repeats) and records what it was sent. */
async function webhook(answers: Answer[]): Promise<{ url: string; received: Received[] }> {
  const received: Received[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      received.push({ authorization: req.headers.authorization, body: JSON.parse(Buffer.concat(chunks).toString("utf8")) });
      const answer = answers[Math.min(received.length, answers.length) - 1] as Answer;
      if (answer === "drop") {
        req.socket.destroy();
        return;
      }
      res.writeHead(answer.status, { "content-type": "application/json", ...answer.headers }).end("{}");
    });
  });
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/audit`, received };
}

function event(i: number): AuditEvent {
  return {
    level: "Metadata",
    auditID: `replayed-${i}`,
    stage: "ResponseComplete",
    requestURI: "/api/v1/namespaces/default/pods",
    verb: "list",
    user: { username: "alice" },
    stageTimestamp: `2026-12-07T10:00:0${i}.123456Z`,
    cluster: "prod",
  };
}

/** A sink that records the waits it is asked for instead of waiting. */
function sink(url: string, options: { token?: string } = {}) {
  const waits: number[] = [];
  const webhookSink = new WebhookSink(url, { ...options, sleep: async (ms) => void waits.push(ms) });
  return { sink: webhookSink, waits };
}

async function rejection(promise: Promise<unknown>): Promise<Error> {
  try {
    await promise;
  } catch (err) {
    return err as Error;
  }
  throw new Error("expected a rejection");
}

describe("WebhookSink", () => {
  it("sends a batch the webhook answered 500 again, once it answers 200", async () => {
    const hook = await webhook([{ status: 500 }, { status: 200 }]);
    const { sink: s, waits } = sink(hook.url, { token: "replay-token" });
    await s.add(event(1));
    await s.add(event(2));
    await s.flush();
    expect(hook.received).toHaveLength(2);
    expect(waits).toEqual([1000]);
    expect([s.sent, s.failedBatches]).toEqual([2, 0]);
    const [first, second] = hook.received;
    expect(second).toEqual(first);
    expect(first?.authorization).toBe("Bearer replay-token");
    expect(first?.body.kind).toBe("EventList");
    // As the apiserver sends them: no cluster field, the receiving ingest stamps its own.
    expect(first?.body.items.map((e) => [e.auditID, e.cluster])).toEqual([
      ["replayed-1", undefined],
      ["replayed-2", undefined],
    ]);
  });

  it("does not send again a batch the webhook refused (400), and says why", async () => {
    const hook = await webhook([{ status: 400 }, { status: 200 }]);
    const { sink: s, waits } = sink(hook.url);
    await s.add(event(1));
    const err = await rejection(s.flush());
    expect(hook.received).toHaveLength(1);
    expect(waits).toEqual([]);
    expect([s.sent, s.failedBatches]).toEqual([0, 1]);
    expect(err.message).toBe(`posting 1 events to ${hook.url} failed after 1 attempt: webhook answered 400`);
    expect(err.cause).toBeInstanceOf(WebhookRejectedError);
    expect((err.cause as WebhookRejectedError).status).toBe(400);
  });

  it("gives up after 5 attempts on a webhook that keeps answering 503, waiting a second more each time", async () => {
    const hook = await webhook([{ status: 503 }]);
    const { sink: s, waits } = sink(hook.url);
    await s.add(event(1));
    const err = await rejection(s.flush());
    expect(hook.received).toHaveLength(5);
    expect(waits).toEqual([1000, 2000, 3000, 4000]);
    expect(s.failedBatches).toBe(1);
    expect((err.cause as WebhookRejectedError).status).toBe(503);
  });

  it("waits as long as Retry-After asks, at most 30 s", async () => {
    const hook = await webhook([
      { status: 429, headers: { "retry-after": "7" } },
      { status: 503, headers: { "retry-after": "120" } },
      { status: 200 },
    ]);
    const { sink: s, waits } = sink(hook.url);
    await s.add(event(1));
    await s.flush();
    expect(waits).toEqual([7000, 30_000]);
    expect(s.sent).toBe(1);
  });

  it("sends again after a dropped connection (no answer at all)", async () => {
    const hook = await webhook(["drop", { status: 200 }]);
    const { sink: s, waits } = sink(hook.url);
    await s.add(event(1));
    await s.flush();
    expect(hook.received).toHaveLength(2);
    expect(waits).toEqual([1000]);
    expect(s.sent).toBe(1);
  });
});
