import type { Socket } from "node:net";
import { Transform } from "node:stream";
import type { TLSSocket } from "node:tls";
import { type Bus, createOpsEndpoints, httpStatusOf, type Logger, type OpsEndpoints, type Topics } from "@k8s-audit/core";
import Fastify, { type FastifyBaseLogger, type FastifyInstance, type FastifyReply, type FastifyRequest, LogController } from "fastify";
import type { RecentEvents } from "./dedup.js";
import { Ingestor } from "./ingestor.js";
import { type DepthCut, parseJsonGuarded } from "./json-guard.js";
import { createIngestMetrics, type IngestMetrics } from "./metrics.js";
import { type IngestSettings, withDefaultSettings } from "./settings.js";
import type { Spool } from "./spool.js";
import { type Credential, certificateClusters, decideCluster, tokenClusters } from "./tenancy.js";
import { readTlsFiles, watchFiles } from "./tls.js";
import { TokenSet } from "./tokens.js";

/**
 * The server's collaborators and test hooks; its settings (limits, timeouts, authentication files) are IngestSettings,
 * defaulted from the configuration schema (settings.ts).
 */
export interface IngestOptions extends Partial<IngestSettings> {
  bus: Bus;
  topics: Topics;
  logger: Logger;
  /** Bearer tokens given directly (tests, embedding). */
  tokens?: TokenSet;
  /**
   * Tokens /metrics and the details of /readyz require on a server started alone; under the runner the process's
   * ops endpoints (`ops`) decide, from K8S_AUDIT_METRICS_TOKEN_FILE.
   */
  metricsTokens?: TokenSet;
  spool?: Spool;
  dedup?: RecentEvents;
  /** How often TLS and token files are checked for changes. */
  reloadIntervalMs?: number;
  /** The window the body-rate floor is averaged over (default 10 s). */
  bodyRateWindowMs?: number;
  metrics?: IngestMetrics;
  /** The runner's /metrics, /healthz and /readyz (the whole process's); the server's own when absent. */
  ops?: OpsEndpoints;
}

/** Reserved for a request without Content-Length (chunked) until its real size is known. */
const UNKNOWN_LENGTH_RESERVATION = 1024 * 1024;
/** At most one log line per this interval for failed handshakes (a scanner can make thousands). */
const HANDSHAKE_LOG_INTERVAL_MS = 10_000;

/**
 * The audit webhook receiver. Order matters, so an unauthenticated client costs O(headers): TLS (with mTLS alone, the
 * client certificate is verified in the handshake); then, in `onRequest`, before any body byte is reserved or read,
 * authentication (certificate and/or constant-time bearer token) and the cluster the credential may write (401/403 close
 * the connection, so an unread body is never drained); then backpressure (429 past the in-flight bytes bound); then the
 * body is read, parsed with a depth guard (json-guard.ts), and the Ingestor validates, redacts, dedups and stores it.
 */
export function createIngestServer(given: IngestOptions): FastifyInstance & { metrics: IngestMetrics } {
  const options = withDefaultSettings(given);
  const { logger } = options;
  const metrics = options.metrics ?? createIngestMetrics();
  const retryAfter = String(options.retryAfterSeconds);
  const tokens = options.tokens ?? (options.tokensFile ? TokenSet.fromFile(options.tokensFile) : undefined);
  const mtls = Boolean(options.tls?.clientCa);
  // mTLS as the only method: verify in the handshake. With tokens too, a client without a certificate must reach HTTP
  // to show its token, so the certificate is checked in onRequest instead.
  const verifyInHandshake = mtls && !tokens;
  const allowedSubjects = options.tls?.allowedSubjects?.length ? new Set(options.tls.allowedSubjects) : undefined;
  const bodyLimit = options.bodyLimitBytes;
  const maxEventDepth = options.maxEventDepth;
  const headersTimeout = options.headersTimeoutMs;
  const serverTimeouts = {
    headersTimeout,
    // Node checks the headers and request timeouts on this interval; its 30 s default would let them overrun.
    connectionsCheckingInterval: Math.min(250, headersTimeout / 4),
  };

  // One instance type for HTTP and HTTPS: the routes never touch the raw server.
  const app = Fastify({
    loggerInstance: logger.child({ component: "ingest" }) as FastifyBaseLogger,
    // Per-request log lines would be one per apiserver batch: metrics count those; logs keep the exceptions.
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit,
    requestTimeout: options.requestTimeoutMs,
    keepAliveTimeout: options.keepAliveTimeoutMs,
    connectionTimeout: options.idleTimeoutMs,
    // The apiserver keeps connections alive between batches; close idle ones promptly on shutdown.
    forceCloseConnections: "idle",
    ...(options.tls
      ? {
          https: {
            ...readTlsFiles(options.tls),
            ...serverTimeouts,
            requestCert: mtls,
            rejectUnauthorized: verifyInHandshake,
            handshakeTimeout: headersTimeout,
            minVersion: "TLSv1.2" as const,
          },
        }
      : { http: serverTimeouts }),
  }) as unknown as FastifyInstance;

  limitConnections(app, options.maxConnections, options.maxConnectionsPerClient, metrics);
  let lastHandshakeLog = 0;
  app.server.on("tlsClientError", (err: Error) => {
    metrics.tlsHandshakeFailures.inc();
    const now = Date.now();
    if (now - lastHandshakeLog > HANDSHAKE_LOG_INTERVAL_MS) {
      lastHandshakeLog = now;
      logger.info({ err }, "TLS handshake failed (logged at most every 10 s; see tls_handshake_failures_total)");
    }
  });

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
            logger.error({ err }, "TLS reload failed; keeping the previous certificate");
          }
        },
        options.reloadIntervalMs,
      ),
    );
  }
  if (options.tokensFile && tokens) stopWatching.push(watchTokenFile(options.tokensFile, tokens, logger, options.reloadIntervalMs));

  const ingestor = new Ingestor({ ...options, metrics });

  // What onRequest decided and the parser found, for the handler.
  const clusterOf = new WeakMap<FastifyRequest, string>();
  const depthCutsOf = new WeakMap<FastifyRequest, DepthCut[]>();
  const malformedOf = new WeakMap<FastifyRequest, string>();

  // application/json only: what the apiserver sends. A text/plain POST is what a web page can send cross-origin without a
  // preflight; Fastify answers 415 for any other type.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser("application/json", { parseAs: "string" }, (req, body, done) => {
    try {
      const { value, cuts } = parseJsonGuarded(body as string, maxEventDepth);
      if (cuts.length > 0) depthCutsOf.set(req, cuts);
      done(null, value);
    } catch (err) {
      // Answered 400 by the handler rather than as a parser error, on which Fastify closes the connection: the body has
      // been read whole, and a client's broken batch should not cost it a new TLS handshake.
      malformedOf.set(req, `malformed JSON: ${(err as Error).message}`);
      done(null, undefined);
    }
  });

  // A client's fault keeps the 4xx its error names (a named error of ours, or one of Fastify's: body too large, wrong
  // content type); anything else is ours, a 500, and logged whole.
  app.setErrorHandler((err, _req, reply) => {
    const named = httpStatusOf(err);
    const status = named !== undefined && named >= 400 && named < 500 ? named : 500;
    if (status >= 500) logger.error({ err }, "ingest request failed");
    void reply.code(status).send({ error: err instanceof Error ? err.message : "internal error" });
  });

  // Backpressure on bytes in flight, decided before the body is read (and after authentication).
  let inflight = 0;
  const maxInflight = options.maxInflightBytes;
  const reserved = new WeakMap<FastifyRequest, number>();
  const release = (req: FastifyRequest) => {
    const n = reserved.get(req);
    if (n !== undefined) {
      reserved.delete(req);
      inflight -= n;
      metrics.inflightBytes.set(inflight);
    }
  };

  const bodyRate = watchBodyRate(options.minBodyBytesPerSecond, options.bodyRateWindowMs ?? 10_000, metrics, logger);
  app.addHook("preParsing", async (req, _reply, payload) => bodyRate.count(req, payload));

  /** Refuses before the body: the connection closes, so an unread body is not drained. */
  const refuse = (reply: FastifyReply, status: number, reason: string, headers: Record<string, string> = {}) =>
    reply
      .code(status)
      .headers({ connection: "close", ...headers })
      .send({ error: reason });

  app.addHook("onRequest", async (req, reply) => {
    const isAudit = req.method === "POST" && req.routeOptions.url?.startsWith("/audit") === true;
    if (!isAudit) {
      // Nothing else takes a body: do not read one.
      if (hasBody(req)) reply.header("connection", "close");
      return;
    }
    const credential = authenticate(req);
    if ("reason" in credential) {
      metrics.authFailures.inc({ reason: credential.metric });
      return refuse(reply, 401, credential.reason, { "WWW-Authenticate": 'Bearer realm="k8s-audit"' });
    }
    const decision = decideCluster(
      credential,
      { path: (req.params as { cluster?: string }).cluster, header: req.headers["x-k8s-audit-cluster"] },
      options.defaultCluster,
    );
    if (!decision.ok) {
      metrics.authFailures.inc({ reason: decision.status === 403 ? "cluster_not_bound" : "bad_cluster" });
      return refuse(reply, decision.status, decision.reason);
    }
    clusterOf.set(req, decision.cluster);

    const declared = req.headers["content-length"] === undefined ? undefined : Number(req.headers["content-length"]);
    if (declared !== undefined && declared > bodyLimit)
      return refuse(reply, 413, `request body of ${declared} bytes is over the limit of ${bodyLimit}`);
    const length = declared ?? UNKNOWN_LENGTH_RESERVATION;
    if (inflight > 0 && inflight + length > maxInflight) {
      metrics.refusedOverload.inc({ code: "429" });
      return refuse(reply, 429, "too many bytes in flight; retry shortly", { "Retry-After": "1" });
    }
    inflight += length;
    reserved.set(req, length);
    metrics.inflightBytes.set(inflight);
  });
  // The body has been read and parsed: from here on its speed is ours, not the client's.
  app.addHook("preValidation", async (req) => bodyRate.done(req));
  app.addHook("onResponse", async (req, reply) => {
    release(req);
    bodyRate.done(req);
    if (req.method === "POST") metrics.requests.inc({ code: String(reply.statusCode) });
  });
  app.addHook("onRequestAbort", async (req) => {
    release(req);
    bodyRate.done(req);
  });
  app.addHook("onClose", async () => {
    for (const stop of stopWatching) stop();
    bodyRate.stop();
  });

  // The operational endpoints are the runner's (one implementation for every stage); a server started alone (tests,
  // benches) gets its own, reporting only itself.
  const ops =
    options.ops ??
    createOpsEndpoints(
      [{ name: "ingest", ready: () => options.bus.ping(), readyDetails: () => ({ spooledBytes: options.spool?.size ?? 0 }) }],
      metrics.registry,
      {
        authorizeMetrics: (authorization) => !options.metricsTokens || options.metricsTokens.verifyAuthorization(authorization),
      },
    );
  for (const path of ["/healthz", "/readyz", "/metrics"]) {
    app.get(path, async (req, reply) => {
      const answer = await ops.respond(path, req.headers.authorization);
      if (!answer) return reply.code(404).send();
      return reply.code(answer.status).headers(answer.headers).send(answer.body);
    });
  }

  /** The client certificate's credential when mTLS admits it, or the reason it does not. */
  const certificateCredential = (req: FastifyRequest): Credential | { reason: string; metric: string } => {
    const socket = req.raw.socket as TLSSocket;
    const cert = typeof socket.getPeerCertificate === "function" ? socket.getPeerCertificate() : undefined;
    if (!cert || Object.keys(cert).length === 0) return { reason: "no client certificate", metric: "no_certificate" };
    if (!socket.authorized)
      return { reason: `client certificate rejected: ${String(socket.authorizationError)}`, metric: "bad_certificate" };
    const cn = first(cert.subject?.CN);
    if (allowedSubjects && !(cn && allowedSubjects.has(cn)))
      return { reason: `client certificate subject CN=${cn ?? "(none)"} is not allowed`, metric: "subject_not_allowed" };
    const bound = certificateClusters(cert, options.defaultCluster);
    if ("reason" in bound) return { reason: bound.reason, metric: "bad_certificate" };
    return { method: "certificate", who: `client certificate CN=${cn ?? "(none)"}`, clusters: bound.clusters };
  };

  /** A valid certificate is authoritative; a token is consulted when there is none (or it is not accepted). */
  const authenticate = (req: FastifyRequest): Credential | { reason: string; metric: string } => {
    if (!mtls && !tokens) return { method: "none", who: "unauthenticated client", clusters: "*" };
    let failure: { reason: string; metric: string } | undefined;
    if (mtls) {
      const cert = certificateCredential(req);
      if (!("reason" in cert)) return cert;
      failure = cert;
    }
    if (tokens) {
      const binding = tokens.verify(req.headers.authorization);
      if (binding) return { method: "token", who: "bearer token", clusters: tokenClusters(binding.clusters, options.defaultCluster) };
      failure = failure
        ? { reason: `${failure.reason}; and no valid bearer token`, metric: failure.metric }
        : { reason: "missing or invalid bearer token", metric: "bad_token" };
    }
    return failure ?? { reason: "unauthenticated", metric: "unauthenticated" };
  };

  for (const url of ["/audit", "/audit/:cluster"]) {
    app.post(url, async (req, reply) => {
      const cluster = clusterOf.get(req);
      if (cluster === undefined) throw new Error("no cluster decided for an authenticated request");
      const malformed = malformedOf.get(req);
      if (malformed !== undefined) return reply.code(400).send({ error: malformed });
      const result = await ingestor.ingest(req.body, cluster, depthCutsOf.get(req));
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

function hasBody(req: FastifyRequest): boolean {
  const length = req.headers["content-length"];
  return req.headers["transfer-encoding"] !== undefined || (length !== undefined && length !== "0");
}

/**
 * Reloads a token file. A deleted file revokes every token (an operator deleting it means "nobody"), as does an empty
 * one; a malformed line is left out (the other lines, and so any revocation in the same edit, take effect); any other
 * read error (permissions, I/O) keeps the previous tokens and is logged: it says nothing about who should be let in.
 */
/**
 * Re-reads a token file when it changes (webhook tokens, metrics tokens): a deleted or emptied file revokes every
 * token; an unreadable one keeps the previous tokens. Returns the function that stops watching.
 */
export function watchTokenFile(file: string, tokens: TokenSet, logger: Logger, intervalMs?: number): () => void {
  return watchFiles([file], () => reloadTokens(file, tokens, logger), intervalMs);
}

function reloadTokens(file: string, tokens: TokenSet, logger: Logger): void {
  try {
    const errors = tokens.load(file);
    if (errors.length > 0) logger.error({ file, errors }, "token file has malformed lines; they are ignored");
    if (tokens.size === 0) logger.warn({ file }, "token file is empty: every bearer token is revoked");
    else logger.info({ file, tokens: tokens.size }, "bearer tokens reloaded");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") {
      tokens.set([]);
      logger.warn({ file }, "token file deleted: every bearer token is revoked");
    } else {
      logger.error({ file, err }, "token file unreadable; keeping the previous tokens");
    }
  }
}

/**
 * Closes connections at accept beyond `total` open ones or `perClient` from one address, before TLS: a single
 * address cannot hold every slot, and nothing is spent on the connections refused.
 */
function limitConnections(app: FastifyInstance, total: number, perClient: number, metrics: IngestMetrics): void {
  const server = app.server;
  const byAddress = new Map<string, number>();
  let open = 0;
  server.on("connection", (socket: Socket) => {
    const address = socket.remoteAddress;
    if (address === undefined) {
      socket.destroy();
      return;
    }
    const mine = byAddress.get(address) ?? 0;
    if (open >= total || mine >= perClient) {
      metrics.connectionsRefused.inc({ reason: open >= total ? "total" : "per_client" });
      socket.destroy();
      return;
    }
    open++;
    byAddress.set(address, mine + 1);
    metrics.connections.set(open);
    socket.once("close", () => {
      open--;
      const left = (byAddress.get(address) ?? 1) - 1;
      if (left > 0) byAddress.set(address, left);
      else byAddress.delete(address);
      metrics.connections.set(open);
    });
  });
}

/**
 * The body-rate floor: a request whose body arrives slower than `minBytesPerSecond` over a window has its
 * connection closed. (The request timeout bounds a slow body too, but only after a minute per connection.)
 */
function watchBodyRate(minBytesPerSecond: number, windowMs: number, metrics: IngestMetrics, logger: Logger) {
  const watched = new Map<FastifyRequest, { bytes: number; markAt: number; markBytes: number }>();
  const timer =
    minBytesPerSecond > 0
      ? setInterval(
          () => {
            const now = Date.now();
            for (const [req, w] of watched) {
              if (now - w.markAt < windowMs) continue;
              if (((w.bytes - w.markBytes) * 1000) / (now - w.markAt) < minBytesPerSecond) {
                watched.delete(req);
                metrics.slowBodiesCut.inc();
                logger.warn(
                  { client: req.ip, received: w.bytes },
                  `request body slower than ${minBytesPerSecond} bytes/s; connection closed`,
                );
                req.raw.socket.destroy();
                continue;
              }
              w.markAt = now;
              w.markBytes = w.bytes;
            }
          },
          Math.min(1000, windowMs / 4),
        )
      : undefined;
  timer?.unref();
  return {
    count(req: FastifyRequest, payload: NodeJS.ReadableStream): NodeJS.ReadableStream {
      if (!timer || req.method !== "POST") return payload;
      const w = { bytes: 0, markAt: Date.now(), markBytes: 0 };
      watched.set(req, w);
      const counter = new Transform({
        transform(chunk: Buffer, _encoding, callback) {
          w.bytes += chunk.length;
          // Fastify compares this with Content-Length and the body limit.
          (counter as unknown as { receivedEncodedLength: number }).receivedEncodedLength = w.bytes;
          callback(null, chunk);
        },
      });
      payload.on("error", (err) => counter.destroy(err));
      return payload.pipe(counter);
    },
    done(req: FastifyRequest): void {
      watched.delete(req);
    },
    stop(): void {
      if (timer) clearInterval(timer);
      watched.clear();
    },
  };
}
