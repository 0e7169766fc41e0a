import { chmodSync, mkdirSync, readdirSync, readFileSync, statSync } from "node:fs";
import { open, readFile, rename, unlink } from "node:fs/promises";
import { join } from "node:path";
import type { Bus, BusMessage, Logger } from "@k8s-audit/core";

export interface SpoolEntry {
  topic: string;
  messages: BusMessage[];
}

const SEGMENT = /^(\d{12})\.json$/;

/**
 * A bounded local disk queue for when Kafka is unreachable: the apiserver gives up on a batch after about 90 s of
 * retries, so a Kafka outage longer than that would lose events without it. Each accepted request becomes one segment
 * file (written to a temp name, fsynced, renamed: a crash never leaves half a segment). Segments drain in order; while
 * any wait, new requests queue behind them so order is kept.
 */
export class Spool {
  private seq = 0;
  private bytes = 0;
  private files: { name: string; size: number }[] = [];
  private draining: Promise<void> | undefined;
  private stopped = false;
  private wake: (() => void) | undefined;

  constructor(
    private readonly dir: string,
    private readonly maxBytes: number,
    private readonly bus: Bus,
    private readonly logger: Logger,
    private readonly onBytes: (bytes: number) => void = () => {},
  ) {
    // Spooled events are the cluster's audit trail: readable by the ingest's user only.
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    try {
      chmodSync(dir, 0o700);
    } catch (err) {
      logger.warn({ dir, err }, "cannot make the spool folder private (0700)");
    }
    for (const name of readdirSync(dir).sort()) {
      const m = SEGMENT.exec(name);
      if (!m) continue;
      // Segments written by an older version may be world-readable.
      try {
        chmodSync(join(dir, name), 0o600);
      } catch {
        // not ours to change; the folder's 0700 still keeps others out
      }
      const size = statSync(join(dir, name)).size;
      this.files.push({ name, size });
      this.bytes += size;
      this.seq = Math.max(this.seq, Number(m[1]));
    }
    this.onBytes(this.bytes);
  }

  get pending(): boolean {
    return this.files.length > 0;
  }

  get size(): number {
    return this.bytes;
  }

  /**
   * The messages for `topic` still waiting in the spool, segment by segment, oldest first (what a restarted ingest must
   * know it already accepted). A segment drained meanwhile, or unreadable, is skipped: the drain reports the latter.
   */
  *waiting(topic: string): Generator<BusMessage> {
    for (const { name } of [...this.files]) {
      let entries: SpoolEntry[];
      try {
        entries = JSON.parse(readFileSync(join(this.dir, name), "utf8")) as SpoolEntry[];
      } catch {
        continue;
      }
      for (const entry of entries) if (entry.topic === topic) yield* entry.messages;
    }
  }

  /** Stores one request's messages durably; false when the spool is full (the caller answers 503). */
  async append(entries: SpoolEntry[]): Promise<boolean> {
    const data = Buffer.from(JSON.stringify(entries));
    if (this.bytes + data.length > this.maxBytes) return false;
    this.bytes += data.length;
    const name = `${String(++this.seq).padStart(12, "0")}.json`;
    const tmp = join(this.dir, `${name}.tmp`);
    try {
      const fh = await open(tmp, "w", 0o600);
      try {
        await fh.writeFile(data);
        await fh.datasync();
      } finally {
        await fh.close();
      }
      await rename(tmp, join(this.dir, name));
    } catch (err) {
      this.bytes -= data.length;
      throw err;
    }
    this.files.push({ name, size: data.length });
    this.onBytes(this.bytes);
    this.wake?.();
    return true;
  }

  /** Drains segments in order, retrying while the bus is down. */
  start(retryMs = 1000): void {
    if (this.draining) return;
    this.draining = (async () => {
      while (!this.stopped) {
        const next = this.files[0];
        if (!next) {
          await new Promise<void>((r) => {
            this.wake = r;
          });
          continue;
        }
        try {
          const entries = JSON.parse(await readFile(join(this.dir, next.name), "utf8")) as SpoolEntry[];
          for (const entry of entries) await this.bus.publish(entry.topic, entry.messages);
          await unlink(join(this.dir, next.name));
          this.files.shift();
          this.bytes -= next.size;
          this.onBytes(this.bytes);
          if (this.files.length === 0) this.logger.info("spool drained");
        } catch (err) {
          this.logger.warn({ err, waiting: this.files.length }, "spool drain waits for the bus");
          await new Promise((r) => setTimeout(r, retryMs));
        }
      }
    })();
  }

  /** Waits until everything spooled so far is on the bus (or the timeout passes); true when empty. */
  async flush(timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (this.files.length > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    return this.files.length === 0;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.wake?.();
    await this.draining;
  }
}
