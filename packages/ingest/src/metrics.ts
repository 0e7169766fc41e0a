import { Counter, Gauge, Histogram, Registry } from "prom-client";

/**
 * The ingest's Prometheus metrics, registered on the process's registry (the runner's), or on a registry of their own
 * so several servers in one process (tests) do not collide.
 */
export function createIngestMetrics(registry: Registry = new Registry()) {
  const prefix = "k8s_audit_ingest_";
  return {
    registry,
    requests: new Counter({
      name: `${prefix}requests_total`,
      help: "Webhook requests by HTTP status",
      labelNames: ["code"],
      registers: [registry],
    }),
    received: new Counter({ name: `${prefix}events_received_total`, help: "Items received in webhook bodies", registers: [registry] }),
    accepted: new Counter({ name: `${prefix}events_accepted_total`, help: "Valid events stored (Kafka or spool)", registers: [registry] }),
    rejected: new Counter({
      name: `${prefix}events_rejected_total`,
      help: "Items refused, by reason; they go to the dead-letter topic",
      labelNames: ["reason"],
      registers: [registry],
    }),
    deduped: new Counter({ name: `${prefix}events_deduplicated_total`, help: "Exact re-sends dropped", registers: [registry] }),
    truncated: new Counter({
      name: `${prefix}events_truncated_total`,
      help: "Oversize events stored without bodies",
      registers: [registry],
    }),
    redacted: new Counter({ name: `${prefix}events_redacted_total`, help: "Events with secret values removed", registers: [registry] }),
    spooled: new Counter({ name: `${prefix}events_spooled_total`, help: "Events written to the local spool", registers: [registry] }),
    spoolBytes: new Gauge({ name: `${prefix}spool_bytes`, help: "Bytes waiting in the local spool", registers: [registry] }),
    produceLatency: new Histogram({
      name: `${prefix}produce_latency_seconds`,
      help: "Time for Kafka to acknowledge one request's events",
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [registry],
    }),
    inflightBytes: new Gauge({ name: `${prefix}inflight_bytes`, help: "Request body bytes being processed", registers: [registry] }),
    authFailures: new Counter({
      name: `${prefix}auth_failures_total`,
      help: "Requests refused before their body was read: 401 (credential) or 403 (cluster not bound to it), by reason",
      labelNames: ["reason"],
      registers: [registry],
    }),
    tlsHandshakeFailures: new Counter({
      name: `${prefix}tls_handshake_failures_total`,
      help: "TLS handshakes that failed (with mTLS alone: clients without a valid certificate)",
      registers: [registry],
    }),
    connections: new Gauge({ name: `${prefix}connections`, help: "Open client connections", registers: [registry] }),
    connectionsRefused: new Counter({
      name: `${prefix}connections_refused_total`,
      help: "Connections closed at accept: over the per-client or the total cap",
      labelNames: ["reason"],
      registers: [registry],
    }),
    slowBodiesCut: new Counter({
      name: `${prefix}slow_bodies_cut_total`,
      help: "Connections closed because their request body arrived slower than the floor",
      registers: [registry],
    }),
    refusedOverload: new Counter({
      name: `${prefix}overload_refusals_total`,
      help: "Requests refused with 429/503 to push back",
      labelNames: ["code"],
      registers: [registry],
    }),
  };
}

export type IngestMetrics = ReturnType<typeof createIngestMetrics>;
