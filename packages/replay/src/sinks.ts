import { type AuditEvent, type Bus, WebhookRejectedError } from "@k8s-audit/core";

/** Forwards replayed events to a Kafka topic (e.g. one a running detector reads), in batches, keyed like the ingest. */
export class KafkaSink {
  private batch: AuditEvent[] = [];
  sent = 0;

  constructor(
    private readonly bus: Bus,
    private readonly topic: string,
    private readonly batchSize = 1000,
  ) {}

  async add(event: AuditEvent): Promise<void> {
    this.batch.push(event);
    if (this.batch.length >= this.batchSize) await this.flush();
  }

  async flush(): Promise<void> {
    if (this.batch.length === 0) return;
    const batch = this.batch;
    this.batch = [];
    await this.bus.publish(
      this.topic,
      batch.map((e) => ({
        key: `${e.cluster ?? "default"}/${e.auditID}`,
        value: JSON.stringify(e),
        headers: { "x-k8s-audit-source": "replay" },
      })),
    );
    this.sent += batch.length;
  }
}

/** Requests per batch before it is given up on. */
const MAX_ATTEMPTS = 5;
/** The longest wait between two attempts, whatever Retry-After asks. */
const MAX_WAIT_MS = 30_000;

const defaultSleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export interface WebhookSinkOptions {
  token?: string;
  fetch?: typeof fetch;
  batchSize?: number;
  /** How the sink waits between attempts (tests pass one that does not). */
  sleep?: (ms: number) => Promise<void>;
}

/**
 * Posts replayed events to an audit webhook as the kube-apiserver would: EventList batches of up to 400, one request
 * at a time. A batch the webhook cannot take now (429, 5xx, no answer) is sent again, after Retry-After when there is
 * one, else after a second more each time; one it refuses (any other status) is not. After 5 attempts, or a refusal,
 * the batch is given up on and flush throws (its cause: a WebhookRejectedError with the status, or the network error).
 */
export class WebhookSink {
  private batch: AuditEvent[] = [];
  sent = 0;
  failedBatches = 0;

  constructor(
    private readonly url: string,
    private readonly options: WebhookSinkOptions = {},
  ) {}

  async add(event: AuditEvent): Promise<void> {
    // The apiserver's events carry no cluster field: the receiving ingest stamps its own.
    const { cluster: _cluster, ...withoutCluster } = event;
    this.batch.push(withoutCluster as AuditEvent);
    if (this.batch.length >= (this.options.batchSize ?? 400)) await this.flush();
  }

  async flush(): Promise<void> {
    if (this.batch.length === 0) return;
    const items = this.batch;
    this.batch = [];
    const body = JSON.stringify({ kind: "EventList", apiVersion: "audit.k8s.io/v1", metadata: {}, items });
    const doFetch = this.options.fetch ?? fetch;
    const sleep = this.options.sleep ?? defaultSleep;
    for (let attempt = 1; ; attempt++) {
      let failure: unknown;
      let waitMs = attempt * 1000;
      try {
        const res = await doFetch(this.url, {
          method: "POST",
          headers: { "content-type": "application/json", ...(this.options.token ? { authorization: `Bearer ${this.options.token}` } : {}) },
          body,
          signal: AbortSignal.timeout(30_000),
        });
        await res.arrayBuffer();
        if (res.ok) {
          this.sent += items.length;
          return;
        }
        failure = new WebhookRejectedError(this.url, res.status);
        const retryAfterSeconds = Number(res.headers.get("retry-after") ?? 0);
        if (retryAfterSeconds > 0) waitMs = retryAfterSeconds * 1000;
      } catch (err) {
        // No answer: refused connection, reset, timeout. Worth another try.
        failure = err;
      }
      const refused = failure instanceof WebhookRejectedError && !failure.retryable;
      if (refused || attempt === MAX_ATTEMPTS) {
        this.failedBatches++;
        const why = failure instanceof Error ? failure.message : String(failure);
        throw new Error(
          `posting ${items.length} events to ${this.url} failed after ${attempt} attempt${attempt === 1 ? "" : "s"}: ${why}`,
          { cause: failure },
        );
      }
      await sleep(Math.min(waitMs, MAX_WAIT_MS));
    }
  }
}
