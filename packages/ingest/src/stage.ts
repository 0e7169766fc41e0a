import type { Bus, Stage, StageContext } from "@k8s-audit/core";
import { parseListen } from "@k8s-audit/core";
import { RecentEvents, warmRecentEvents } from "./dedup.js";
import { createIngestMetrics } from "./metrics.js";
import { checkIngestConfig } from "./safe-defaults.js";
import { createIngestServer, type IngestOptions } from "./server.js";
import { ingestSettings } from "./settings.js";
import { Spool } from "./spool.js";

/** Settings and server options that replace the configuration's (tests and embedding: token sets, short timeouts). */
export type IngestOverrides = Partial<Omit<IngestOptions, "bus" | "topics" | "logger" | "spool" | "dedup" | "metrics" | "ops">> & {
  /** How often the spool retries Kafka (default 1 s). */
  spoolRetryMs?: number;
};

/**
 * The ingest stage: the webhook server with what it owns (the spool when Kafka is the bus, the dedup memory warmed from
 * the events topic's tail, TLS and token reloads). It also serves the process's /metrics, /healthz and /readyz on its
 * port. `overrides` replace settings (tests: in-memory token sets, short timeouts).
 */
export class IngestStage implements Stage {
  readonly name = "ingest";
  /** The webhook URL once started. */
  url?: string;
  /** The server and its spool once started (tests read their metrics and drain the spool). */
  server?: ReturnType<typeof createIngestServer>;
  spool?: Spool;
  private bus?: Bus;

  constructor(private readonly overrides: IngestOverrides = {}) {}

  async start(context: StageContext): Promise<void> {
    const { bus, topics, config, logger } = context;
    this.bus = bus;
    const listen = parseListen(config.K8S_AUDIT_LISTEN);
    // Safe defaults (docs/security.md): off loopback, TLS and a client authenticator unless opted out by name.
    const check = checkIngestConfig(config, listen.host);
    if (check.error) throw new Error(check.error);
    for (const warning of check.warnings) logger.warn(warning);
    const metrics = createIngestMetrics(context.metrics);
    if (bus.kind === "kafka" && config.K8S_AUDIT_SPOOL_MAX_BYTES > 0) {
      this.spool = new Spool(config.K8S_AUDIT_SPOOL_DIR, config.K8S_AUDIT_SPOOL_MAX_BYTES, bus, logger, (bytes) =>
        metrics.spoolBytes.set(bytes),
      );
      this.spool.start(this.overrides.spoolRetryMs);
    }
    const dedupWindowMs = config.K8S_AUDIT_DEDUP_WINDOW_SECONDS * 1000;
    const dedup =
      dedupWindowMs > 0 && config.K8S_AUDIT_DEDUP_CAPACITY > 0
        ? new RecentEvents(dedupWindowMs, config.K8S_AUDIT_DEDUP_CAPACITY)
        : undefined;
    // Before listening: a batch the previous process stored but never answered is about to be sent again (dedup.ts).
    if (dedup && bus.kind === "kafka") {
      await warmRecentEvents(dedup, {
        bus,
        topic: topics.events,
        windowMs: dedupWindowMs,
        capacity: config.K8S_AUDIT_DEDUP_CAPACITY,
        spool: this.spool,
        logger,
      });
    }
    const { spoolRetryMs: _, ...overrides } = this.overrides;
    const settings = { ...ingestSettings(config), ...overrides };
    this.server = createIngestServer({
      ...settings,
      bus,
      topics,
      logger,
      metrics,
      ops: context.ops,
      ...(this.spool ? { spool: this.spool } : {}),
      ...(dedup ? { dedup } : {}),
    });
    await this.server.listen({ host: listen.host, port: listen.port });
    const address = this.server.server.address();
    const port = typeof address === "object" && address ? address.port : listen.port;
    const host = listen.host.includes(":") ? `[${listen.host}]` : listen.host;
    this.url = `${settings.tls ? "https" : "http"}://${host}:${port}/audit`;
  }

  /** Ready when its events can be stored: Kafka answers (the in-memory bus always does). */
  async ready(): Promise<boolean> {
    return this.server !== undefined && (await this.bus?.ping()) === true;
  }

  readyDetails(): Record<string, unknown> {
    return { spooledBytes: this.spool?.size ?? 0 };
  }

  /** Stops accepting and finishes in-flight requests, then gives the spool a chance to drain (the rest is sent next start). */
  async stop(): Promise<void> {
    await this.server?.close();
    if (this.spool) {
      await this.spool.flush(10_000);
      await this.spool.stop();
    }
  }
}
