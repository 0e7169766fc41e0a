import type { Client } from "@elastic/elasticsearch";

export interface BulkDocument {
  id: string;
  index: string;
  document: Record<string, unknown>;
}

export interface BulkOutcome {
  /** Created now or already there (409): stored either way. */
  stored: number;
  /** Refused for good (mapping conflicts, 400-class): to the dead-letter path with the reason. */
  rejected: { doc: BulkDocument; status: number; reason: string }[];
}

export interface BulkOptions {
  maxAttempts?: number;
  initialBackoffMs?: number;
  maxBackoffMs?: number;
  sleep?: (ms: number) => Promise<void>;
}

const defaultSleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * Indexes with `create` and the document's deterministic id, so a re-send is a 409 rather than a duplicate. Items that
 * get 429 (or a whole request that fails: connection loss, 5xx, 429) are retried with backoff; 400-class items are
 * returned as rejected. Throws only when retries are exhausted, so the caller does not commit.
 */
export async function bulkCreate(es: Client, docs: BulkDocument[], options: BulkOptions = {}): Promise<BulkOutcome> {
  const sleep = options.sleep ?? defaultSleep;
  const maxAttempts = options.maxAttempts ?? 8;
  let backoff = options.initialBackoffMs ?? 200;
  let pending = docs;
  let stored = 0;
  const rejected: BulkOutcome["rejected"] = [];

  for (let attempt = 1; pending.length > 0; attempt++) {
    let items: Array<Record<string, { status: number; error?: { type?: string; reason?: string } }>>;
    try {
      const response = await es.bulk({
        operations: pending.flatMap((d) => [{ create: { _index: d.index, _id: d.id } }, d.document]),
      });
      items = response.items as typeof items;
    } catch (err) {
      if (attempt >= maxAttempts) throw err;
      await sleep(backoff);
      backoff = Math.min(backoff * 2, options.maxBackoffMs ?? 10_000);
      continue;
    }
    const retry: BulkDocument[] = [];
    items.forEach((item, i) => {
      const result = item.create ?? Object.values(item)[0];
      const doc = pending[i] as BulkDocument;
      const status = result?.status ?? 500;
      if (status < 300 || status === 409) stored++;
      else if (status === 429 || status >= 500) retry.push(doc);
      else rejected.push({ doc, status, reason: `${result?.error?.type ?? "error"}: ${result?.error?.reason ?? "unknown"}` });
    });
    pending = retry;
    if (pending.length > 0) {
      if (attempt >= maxAttempts) throw new Error(`${pending.length} documents still refused after ${attempt} attempts`);
      await sleep(backoff);
      backoff = Math.min(backoff * 2, options.maxBackoffMs ?? 10_000);
    }
  }
  return { stored, rejected };
}
