import {
  type AuditEvent,
  AuditEventSchema,
  type Bus,
  type BusMessage,
  describeIssues,
  itemsOf,
  type Logger,
  type Topics,
} from "@k8s-audit/core";
import Fastify, { type FastifyBaseLogger, type FastifyInstance, type FastifyReply, LogController } from "fastify";
import type { TokenSet } from "./tokens.js";

export interface IngestOptions {
  bus: Bus;
  topics: Topics;
  logger: Logger;
  /** Cluster stamped on events when neither the URL path nor the header names one. */
  defaultCluster: string;
  bodyLimitBytes?: number;
  /** Bearer tokens; when absent (and no mTLS), the webhook is open — only allowed for the loopback embedded default. */
  tokens?: TokenSet;
  https?: { key: Buffer | string; cert: Buffer | string; ca?: Buffer | string; requestCert?: boolean };
  /** Seconds the client should wait before retrying when we cannot store events. */
  retryAfterSeconds?: number;
}

export interface IngestResult {
  accepted: number;
  rejected: number;
  errors?: { index: number; reason: string }[];
}

const CLUSTER_NAME = /^[a-zA-Z0-9._-]{1,128}$/;
const MAX_REPORTED_ERRORS = 20;

/**
 * The audit webhook receiver. 2xx only after every accepted event (and every rejected item's dead letter) is durable on
 * the bus: the apiserver keeps no copy, and it retries anything that is not 2xx.
 */
export function createIngestServer(options: IngestOptions): FastifyInstance {
  const { bus, topics, logger } = options;
  // One instance type for HTTP and HTTPS: the routes never touch the raw server.
  const app = Fastify({
    loggerInstance: logger.child({ component: "ingest" }) as FastifyBaseLogger,
    // Per-request log lines would be one per apiserver batch: metrics count those; logs keep the exceptions.
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: options.bodyLimitBytes ?? 64 * 1024 * 1024,
    ...(options.https ? { https: options.https } : {}),
  }) as unknown as FastifyInstance;

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

  app.get("/healthz", async () => ({ status: "ok" }));
  app.get("/readyz", async (_req, reply) => {
    const ready = await bus.ping();
    return reply.code(ready ? 200 : 503).send({ status: ready ? "ready" : "bus unreachable" });
  });

  const handle = async (cluster: string, body: unknown, reply: FastifyReply) => {
    let items: unknown[];
    try {
      items = itemsOf(body).items;
    } catch (err) {
      return reply.code(400).send({ error: (err as Error).message });
    }
    const result = await ingestItems(items, cluster);
    if (result === "unavailable") {
      return reply
        .code(503)
        .header("Retry-After", String(options.retryAfterSeconds ?? 5))
        .send({ error: "events could not be stored; retry later" });
    }
    // A batch with nothing valid in it is a client fault; its items are in the dead-letter topic all the same.
    return reply.code(result.accepted === 0 && result.rejected > 0 ? 400 : 200).send(result);
  };

  const ingestItems = async (items: unknown[], cluster: string): Promise<IngestResult | "unavailable"> => {
    const events: BusMessage[] = [];
    const deadLetters: BusMessage[] = [];
    const errors: { index: number; reason: string }[] = [];
    items.forEach((item, index) => {
      const parsed = AuditEventSchema.safeParse(item);
      if (!parsed.success) {
        const reason = describeIssues(parsed.error);
        if (errors.length < MAX_REPORTED_ERRORS) errors.push({ index, reason });
        deadLetters.push({
          value: JSON.stringify(item) ?? "null",
          headers: { "x-k8s-audit-reason": `invalid event: ${reason}`, "x-k8s-audit-stage": "ingest", "x-k8s-audit-cluster": cluster },
        });
        return;
      }
      const event: AuditEvent = { ...parsed.data, cluster };
      events.push({ key: `${cluster}/${event.auditID}`, value: JSON.stringify(event) });
    });
    try {
      await Promise.all([bus.publish(topics.events, events), bus.publish(topics.deadLetter, deadLetters)]);
    } catch (err) {
      logger.error({ err: (err as Error).message, events: events.length }, "publishing to the bus failed");
      return "unavailable";
    }
    return { accepted: events.length, rejected: deadLetters.length, ...(errors.length ? { errors } : {}) };
  };

  const authorize = (authorization: string | undefined, reply: FastifyReply): boolean => {
    if (!options.tokens) return true;
    if (options.tokens.verifyAuthorization(authorization)) return true;
    void reply.code(401).header("WWW-Authenticate", 'Bearer realm="k8s-audit"').send({ error: "missing or invalid bearer token" });
    return false;
  };

  const clusterFrom = (pathCluster: string | undefined, header: string | string[] | undefined): string | Error => {
    const name = pathCluster ?? (typeof header === "string" ? header : undefined) ?? options.defaultCluster;
    return CLUSTER_NAME.test(name) ? name : new Error(`invalid cluster name ${JSON.stringify(name)} (allowed: [a-zA-Z0-9._-], ≤128)`);
  };

  for (const url of ["/audit", "/audit/:cluster"]) {
    app.post<{ Params: { cluster?: string } }>(url, async (req, reply) => {
      if (!authorize(req.headers.authorization, reply)) return reply;
      const cluster = clusterFrom(req.params.cluster, req.headers["x-k8s-audit-cluster"]);
      if (cluster instanceof Error) return reply.code(400).send({ error: cluster.message });
      return handle(cluster, req.body, reply);
    });
  }

  return app;
}
