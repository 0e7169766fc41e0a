import { randomUUID } from "node:crypto";
import type { Dispatcher } from "undici";
import { request } from "undici";
import { auditEvent, eventList } from "./audit-events.js";

export interface BatchOutcome {
  auditIDs: string[];
  status: number | "error";
  /** When the answer came (ms since the epoch). */
  at: number;
  retryAfter?: string;
  storedIn?: string;
}

/**
 * Posts batches of fresh events as an apiserver would (a few requests in flight), until `shouldStop` says so or
 * `maxBatches` were sent. Bounded in count and time; targets loopback only.
 */
export async function postLoad(
  url: string,
  options: { batchSize: number; concurrency: number; maxBatches: number; shouldStop?: () => boolean; pauseMs?: number },
): Promise<BatchOutcome[]> {
  const outcomes: BatchOutcome[] = [];
  let sent = 0;
  const worker = async () => {
    while (sent < options.maxBatches && !options.shouldStop?.()) {
      sent++;
      const items = Array.from({ length: options.batchSize }, () => auditEvent());
      const auditIDs = items.map((e) => e.auditID as string);
      try {
        const res = await fetch(url, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify(eventList(items)),
          signal: AbortSignal.timeout(30_000),
        });
        const body = (await res.json().catch(() => ({}))) as { storedIn?: string };
        outcomes.push({
          auditIDs,
          status: res.status,
          at: Date.now(),
          retryAfter: res.headers.get("retry-after") ?? undefined,
          storedIn: body.storedIn,
        });
      } catch {
        outcomes.push({ auditIDs, status: "error", at: Date.now() });
      }
      if (options.pauseMs) await new Promise((r) => setTimeout(r, options.pauseMs));
    }
  };
  await Promise.all(Array.from({ length: options.concurrency }, worker));
  return outcomes;
}

export const acknowledged = (outcomes: BatchOutcome[]) =>
  outcomes.filter((o) => typeof o.status === "number" && o.status >= 200 && o.status < 300).flatMap((o) => o.auditIDs);

/** Event time of the load: a clock that advances with every event generated, not with the wall clock. */
export class EventClock {
  private seq = 0;
  /**
   * `start` (ms since the epoch) is the first event's time; each event adds `stepMs`. Tied to the count of events, an
   * outage leaves no gap in event time (the apiserver would buffer, not skip), and windows close at a few seconds of
   * load rather than minutes.
   */
  constructor(
    private readonly start = Date.now() - 3_600_000,
    private readonly stepMs = 10,
  ) {}

  /** Moves event time on by `ms` without events (e.g. the quiet end of a load, so windows close). */
  skip(ms: number): void {
    this.seq += Math.ceil(ms / this.stepMs);
  }

  next(): { received: string; stage: string } {
    const t = this.start + this.seq++ * this.stepMs;
    return { received: new Date(t).toISOString(), stage: new Date(t + 3).toISOString() };
  }
}

/** Routine control-plane traffic: leader-election lease reads by the cluster's own components (no rule fires on it). */
export function routineEvent(clock: EventClock, n: number): Record<string, unknown> {
  const components = ["kube-controller-manager", "kube-scheduler"] as const;
  const component = components[n % components.length] as string;
  const t = clock.next();
  return auditEvent({
    level: "Metadata",
    auditID: randomUUID(),
    requestURI: `/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/${component}?timeout=5s`,
    verb: "get",
    user: { username: `system:${component}`, groups: ["system:authenticated"] },
    sourceIPs: [`10.0.0.${10 + (n % 3)}`],
    userAgent: `${component}/v1.31.2 (linux/amd64) kubernetes/5864a46/leader-election`,
    objectRef: { resource: "leases", namespace: "kube-system", name: component, apiGroup: "coordination.k8s.io", apiVersion: "v1" },
    requestReceivedTimestamp: t.received,
    stageTimestamp: t.stage,
  });
}

export interface ApiserverLoadOptions {
  /** The webhook URL (a cluster's path). */
  url: string;
  eventsPerSecond: number;
  /** Events per request (the apiserver's --audit-webhook-batch-max-size is 400). */
  batchSize: number;
  /** Requests in flight at most; when all are busy (retrying), new batches wait, as the apiserver's buffer would. */
  concurrency: number;
  /** New batches are made for this long; retries of unacknowledged ones continue after it. */
  durationMs: number;
  /** The i-th routine event. */
  makeEvent: (i: number) => Record<string, unknown>;
  /**
   * One last batch after the load (and every retry) is done: an apiserver keeps sending, and its later events close the
   * windows the load left open.
   */
  tail?: () => Record<string, unknown>[];
  /** Extra events (attacks) added to the batch made at `atMs` after the start. */
  inject?: { atMs: number; events: () => Record<string, unknown>[] }[];
  /** Exponential backoff of a batch that got no 2xx (the apiserver's webhook retries with backoff). */
  retry?: { initialMs?: number; maxMs?: number; giveUpMs?: number };
  headers?: Record<string, string>;
  dispatcher?: Dispatcher;
  requestTimeoutMs?: number;
}

export interface LoadReport {
  /** Every auditID put in a batch. */
  sent: string[];
  /** auditIDs of batches that got a 2xx. */
  acknowledged: Set<string>;
  /** Batches given up on after giveUpMs of retries (the apiserver drops them). */
  givenUp: string[];
  /** Injected events whose batch was acknowledged. */
  injectedAcknowledged: Record<string, unknown>[];
  requests: number;
  /** Answers that were not 2xx, by status ("error": connection failure or timeout). */
  refusals: Record<string, number>;
  /** 429 and 503 answers that said nothing about when to come back (Retry-After). */
  refusalsWithoutRetryAfter: number;
  /** Per-request latency in ms, each attempt. */
  latencies: number[];
  batches: number;
}

export function percentile(values: number[], p: number): number {
  if (values.length === 0) return 0;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] as number;
}

/**
 * A steady load at `eventsPerSecond`, posted as an apiserver's audit webhook does: batches of `batchSize`, up to
 * `concurrency` in flight, each retried with exponential backoff until it gets a 2xx (or `giveUpMs` passes). Records
 * what was sent and what was acknowledged. `stop()` ends the making of new batches early.
 */
export function apiserverLoad(options: ApiserverLoadOptions): { done: Promise<LoadReport>; stop: () => void } {
  const report: LoadReport = {
    sent: [],
    acknowledged: new Set(),
    givenUp: [],
    injectedAcknowledged: [],
    requests: 0,
    refusals: {},
    refusalsWithoutRetryAfter: 0,
    latencies: [],
    batches: 0,
  };
  const initialMs = options.retry?.initialMs ?? 100;
  const maxMs = options.retry?.maxMs ?? 2000;
  const giveUpMs = options.retry?.giveUpMs ?? 120_000;
  const timeoutMs = options.requestTimeoutMs ?? 30_000;
  const pending = [...(options.inject ?? [])].sort((a, b) => a.atMs - b.atMs);
  const started = Date.now();
  let stopped = false;
  let made = 0;
  const intervalMs = (options.batchSize / options.eventsPerSecond) * 1000;

  const send = async (items: Record<string, unknown>[]): Promise<boolean> => {
    const t0 = Date.now();
    report.requests++;
    try {
      const res = await request(options.url, {
        method: "POST",
        body: JSON.stringify(eventList(items)),
        headers: { "content-type": "application/json", ...options.headers },
        headersTimeout: timeoutMs,
        bodyTimeout: timeoutMs,
        ...(options.dispatcher ? { dispatcher: options.dispatcher } : {}),
      });
      await res.body.dump();
      report.latencies.push(Date.now() - t0);
      if (res.statusCode >= 200 && res.statusCode < 300) return true;
      report.refusals[res.statusCode] = (report.refusals[res.statusCode] ?? 0) + 1;
      if ((res.statusCode === 429 || res.statusCode === 503) && !res.headers["retry-after"]) report.refusalsWithoutRetryAfter++;
      return false;
    } catch {
      report.latencies.push(Date.now() - t0);
      report.refusals.error = (report.refusals.error ?? 0) + 1;
      return false;
    }
  };

  const deliver = async (items: Record<string, unknown>[], injected: Record<string, unknown>[]) => {
    const first = Date.now();
    let backoff = initialMs;
    const ids = items.map((e) => e.auditID as string);
    for (;;) {
      if (await send(items)) {
        for (const id of ids) report.acknowledged.add(id);
        report.injectedAcknowledged.push(...injected);
        return;
      }
      if (Date.now() - first > giveUpMs) {
        report.givenUp.push(...ids);
        return;
      }
      await new Promise((r) => setTimeout(r, backoff));
      backoff = Math.min(backoff * 2, maxMs);
    }
  };

  const done = (async () => {
    const inflight = new Set<Promise<void>>();
    let n = 0;
    while (!stopped && Date.now() - started < options.durationMs) {
      // Pace by schedule: batch k is due at start + k × interval (a slow spell is caught up, bounded by concurrency).
      const due = started + made * intervalMs;
      if (due > Date.now()) await new Promise((r) => setTimeout(r, due - Date.now()));
      while (inflight.size >= options.concurrency) await Promise.race(inflight);
      const items: Record<string, unknown>[] = [];
      for (let i = 0; i < options.batchSize; i++) items.push(options.makeEvent(n++));
      const injected: Record<string, unknown>[] = [];
      while (pending.length > 0 && (pending[0] as { atMs: number }).atMs <= Date.now() - started) {
        injected.push(...(pending.shift() as { events: () => Record<string, unknown>[] }).events());
      }
      items.push(...injected);
      for (const e of items) report.sent.push(e.auditID as string);
      made++;
      report.batches++;
      const p = deliver(items, injected).finally(() => inflight.delete(p));
      inflight.add(p);
    }
    await Promise.all(inflight);
    if (options.tail) {
      const items = options.tail();
      for (const e of items) report.sent.push(e.auditID as string);
      report.batches++;
      await deliver(items, []);
    }
    return report;
  })();
  return {
    done,
    stop: () => {
      stopped = true;
    },
  };
}
