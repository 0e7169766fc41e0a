import type { TLSSocket } from "node:tls";
import type { Bus, Logger, Topics } from "@k8s-audit/core";
import Fastify, { type FastifyBaseLogger, type FastifyInstance, type FastifyReply, type FastifyRequest, LogController } from "fastify";
import type { RecentEvents } from "./dedup.js";
import { Ingestor } from "./ingestor.js";
import { createIngestMetrics, type IngestMetrics } from "./metrics.js";
import type { Spool } from "./spool.js";
import { readTlsFiles, type TlsFiles, watchFiles } from "./tls.js";
import { TokenSet } from "./tokens.js";

export interface IngestOptions {
  bus: Bus;
  topics: Topics;
  logger: Logger;
  /** Cluster stamped on events when neither the URL path, the header nor the client certificate names one. */
  defaultCluster: string;
  /** Largest request body (default 64 MiB; the apiserver sends up to 400 events, each possibly large). */
  bodyLimitBytes?: number;
  /** Request bytes processed at once; beyond it, 429 + Retry-After (default 256 MiB). */
  maxInflightBytes?: number;
  /** Events larger than this lose bulk until they fit, keeping what rules read (truncate.ts; default 900 KiB, under Kafka's 1 MB). */
  maxEventBytes?: number;
  /** Events stamped further ahead of the ingest's clock are kept and marked (default 5 minutes). */
  maxFutureSkewMs?: number;
  /** Serve HTTPS from these files (reloaded on change); with clientCa, clients must present a certificate it signed. */
  tls?: TlsFiles & { allowedSubjects?: string[] };
  /** Bearer tokens, one per line; reloaded on change. */
  tokensFile?: string;
  /** Bearer tokens given directly (tests, embedding). */
  tokens?: TokenSet;
  spool?: Spool;
  dedup?: RecentEvents;
  /** Redaction of secret values; on unless explicitly disabled. */
  redact?: boolean;
  retryAfterSeconds?: number;
  /** Longest wait for Kafka before the request falls back to the spool or 503 (default 10 s, well under the client's 30 s). */
  publishTimeoutMs?: number;
  /** How often TLS and token files are checked for changes. */
  reloadIntervalMs?: number;
  metrics?: IngestMetrics;
  /** Other stages' registries in the same process (the embedded `start`), served on the same /metrics. */
  moreMetrics?: { metrics(): Promise<string> }[];
}

const CLUSTER_NAME = /^[a-zA-Z0-9._-]{1,128}$/;
/** Reserved for a request without Content-Length (chunked) until its real size is known. */
const UNKNOWN_LENGTH_RESERVATION = 1024 * 1024;

/**
 * The audit webhook receiver: authentication (mTLS and/or bearer tokens), backpressure (429 past the in-flight bytes
 * bound, 503 when nothing can be stored), then the Ingestor does validation, redaction, dedup and durable storage.
 */
export function createIngestServer(options: IngestOptions): FastifyInstance & { metrics: IngestMetrics } {
  const { logger } = options;
  const metrics = options.metrics ?? createIngestMetrics();
  const retryAfter = String(options.retryAfterSeconds ?? 5);
  const tokens = options.tokens ?? (options.tokensFile ? TokenSet.fromFile(options.tokensFile) : undefined);
  const mtls = Boolean(options.tls?.clientCa);
  const allowedSubjects = options.tls?.allowedSubjects?.length ? new Set(options.tls.allowedSubjects) : undefined;

  // One instance type for HTTP and HTTPS: the routes never touch the raw server.
  const app = Fastify({
    loggerInstance: logger.child({ component: "ingest" }) as FastifyBaseLogger,
    // Per-request log lines would be one per apiserver batch: metrics count those; logs keep the exceptions.
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: options.bodyLimitBytes ?? 64 * 1024 * 1024,
    // The apiserver keeps connections alive between batches; close idle ones promptly on shutdown.
    forceCloseConnections: "idle",
    ...(options.tls
      ? { https: { ...readTlsFiles(options.tls), requestCert: mtls, rejectUnauthorized: false, minVersion: "TLSv1.2" as const } }
      : {}),
  }) as unknown as FastifyInstance;

  const stopWatching: (() => void)[] = [];
  if (options.tls) {
    const tlsFiles = options.tls;
    const files = [tlsFiles.cert, tlsFiles.key, ...(tlsFiles.clientCa ? [tlsFiles.clientCa] : [])];
    stopWatching.push(
      watchFiles(
        files,
        () => {
          try {
            // New handshakes use the new material; established connections are not dropped.
            (app.server as unknown as { setSecureContext(o: object): void }).setSecureContext(readTlsFiles(tlsFiles));
            logger.info({ files }, "TLS certificate, key or client CA reloaded");
          } catch (err) {
            logger.error({ err: (err as Error).message }, "TLS reload failed; keeping the previous certificate");
          }
        },
        options.reloadIntervalMs,
      ),
    );
  }
  if (options.tokensFile && tokens) {
    const file = options.tokensFile;
    stopWatching.push(
      watchFiles(
        [file],
        () => {
          try {
            tokens.load(file);
            logger.info({ file, tokens: tokens.size }, "bearer tokens reloaded");
          } catch (err) {
            logger.error({ err: (err as Error).message }, "token reload failed; keeping the previous tokens");
          }
        },
        options.reloadIntervalMs,
      ),
    );
  }

  const ingestor = new Ingestor({ ...options, metrics });

  app.addContentTypeParser(["application/json", "text/plain"], { parseAs: "string" }, (_req, body, done) => {
    try {
      done(null, JSON.parse(body as string));
    } catch (err) {
      const e = new Error(`malformed JSON: ${(err as Error).message}`) as Error & { statusCode: number };
      e.statusCode = 400;
      done(e, undefined);
    }
  });

  app.setErrorHandler((err: Error & { statusCode?: number }, _req, reply) => {
    const status = err.statusCode && err.statusCode >= 400 && err.statusCode < 500 ? err.statusCode : 500;
    if (status >= 500) logger.error({ err }, "ingest request failed");
    void reply.code(status).send({ error: err.message });
  });

  // Backpressure on bytes in flight, decided before the body is read.
  let inflight = 0;
  const maxInflight = options.maxInflightBytes ?? 256 * 1024 * 1024;
  const reserved = new WeakMap<FastifyRequest, number>();
  const release = (req: FastifyRequest) => {
    const n = reserved.get(req);
    if (n !== undefined) {
      reserved.delete(req);
      inflight -= n;
      metrics.inflightBytes.set(inflight);
    }
  };
  app.addHook("onRequest", async (req, reply) => {
    if (req.method !== "POST") return;
    const length = Number(req.headers["content-length"] ?? UNKNOWN_LENGTH_RESERVATION);
    if (inflight > 0 && inflight + length > maxInflight) {
      metrics.refusedOverload.inc({ code: "429" });
      return reply.code(429).header("Retry-After", "1").send({ error: "too many bytes in flight; retry shortly" });
    }
    inflight += length;
    reserved.set(req, length);
    metrics.inflightBytes.set(inflight);
  });
  app.addHook("onResponse", async (req, reply) => {
    release(req);
    if (req.method === "POST") metrics.requests.inc({ code: String(reply.statusCode) });
  });
  app.addHook("onRequestAbort", async (req) => release(req));
  app.addHook("onClose", async () => {
    for (const stop of stopWatching) stop();
  });

  app.get("/healthz", async () => ({ status: "ok" }));
  app.get("/readyz", async (_req, reply) => {
    const ready = await options.bus.ping();
    return reply.code(ready ? 200 : 503).send({ status: ready ? "ready" : "kafka unreachable", spooledBytes: options.spool?.size ?? 0 });
  });
  app.get("/metrics", async (_req, reply) => {
    const texts = await Promise.all([metrics.registry, ...(options.moreMetrics ?? [])].map((r) => r.metrics()));
    return reply.header("content-type", metrics.registry.contentType).send(texts.join("\n"));
  });

  /** Returns the client certificate's identity when mTLS admits it, or the reason it does not. */
  const certificateCheck = (req: FastifyRequest): { ok: true; ou?: string } | { ok: false; reason: string } => {
    const socket = req.raw.socket as TLSSocket;
    const cert = typeof socket.getPeerCertificate === "function" ? socket.getPeerCertificate() : undefined;
    if (!cert || Object.keys(cert).length === 0) return { ok: false, reason: "no client certificate" };
    if (!socket.authorized) return { ok: false, reason: `client certificate rejected: ${String(socket.authorizationError)}` };
    const cn = first(cert.subject?.CN);
    if (allowedSubjects && !(cn && allowedSubjects.has(cn)))
      return { ok: false, reason: `client certificate subject CN=${cn ?? "(none)"} is not allowed` };
    return { ok: true, ou: first(cert.subject?.OU) };
  };

  const authenticate = (req: FastifyRequest, reply: FastifyReply): { ok: boolean; certCluster?: string } => {
    if (!mtls && !tokens) return { ok: true };
    let reason = "";
    if (mtls) {
      const check = certificateCheck(req);
      if (check.ok) return { ok: true, certCluster: check.ou };
      reason = check.reason;
    }
    if (tokens) {
      if (tokens.verifyAuthorization(req.headers.authorization)) return { ok: true };
      reason = reason ? `${reason}; and no valid bearer token` : "missing or invalid bearer token";
    }
    void reply.code(401).header("WWW-Authenticate", 'Bearer realm="k8s-audit"').send({ error: reason });
    return { ok: false };
  };

  const clusterOf = (req: FastifyRequest<{ Params: { cluster?: string } }>, certCluster?: string): string | Error => {
    const header = req.headers["x-k8s-audit-cluster"];
    const name = req.params.cluster ?? (typeof header === "string" ? header : undefined) ?? certCluster ?? options.defaultCluster;
    return CLUSTER_NAME.test(name) ? name : new Error(`invalid cluster name ${JSON.stringify(name)} (allowed: [a-zA-Z0-9._-], ≤128)`);
  };

  for (const url of ["/audit", "/audit/:cluster"]) {
    app.post<{ Params: { cluster?: string } }>(url, async (req, reply) => {
      const auth = authenticate(req, reply);
      if (!auth.ok) return reply;
      const cluster = clusterOf(req, auth.certCluster);
      if (cluster instanceof Error) return reply.code(400).send({ error: cluster.message });
      const result = await ingestor.ingest(req.body, cluster);
      if (result.status === 503) {
        metrics.refusedOverload.inc({ code: "503" });
        reply.header("Retry-After", retryAfter);
      }
      return reply.code(result.status).send(result.body);
    });
  }

  return Object.assign(app, { metrics });
}

function first(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}
