import type { AuditEvent, Bus } from "@k8s-audit/core";

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

/**
 * Posts replayed events to an audit webhook as the kube-apiserver would: EventList batches of up to 400, one request
 * at a time, honouring 429/503 Retry-After, giving up on a batch after 5 attempts (and saying so).
 */
export class WebhookSink {
  private batch: AuditEvent[] = [];
  sent = 0;
  failedBatches = 0;

  constructor(
    private readonly url: string,
    private readonly options: { token?: string; fetch?: typeof fetch; batchSize?: number } = {},
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
    for (let attempt = 1; attempt <= 5; attempt++) {
      try {
        const res = await doFetch(this.url, {
          method: "POST",
          headers: { "content-type": "application/json", ...(this.options.token ? { authorization: `Bearer ${this.options.token}` } : {}) },
          body,
          signal: AbortSignal.timeout(30_000),
        });
        await res.arrayBuffer();
        if (res.status >= 200 && res.status < 300) {
          this.sent += items.length;
          return;
        }
        const retryAfter = Number(res.headers.get("retry-after") ?? 0);
        if (res.status !== 429 && res.status < 500) throw new Error(`webhook answered ${res.status}`);
        await new Promise((r) => setTimeout(r, Math.min(30, retryAfter || attempt) * 1000));
      } catch (err) {
        if (attempt === 5 || /answered 4/.test((err as Error).message)) {
          this.failedBatches++;
          throw new Error(`posting ${items.length} events to ${this.url} failed: ${(err as Error).message}`);
        }
        await new Promise((r) => setTimeout(r, attempt * 1000));
      }
    }
  }
}
