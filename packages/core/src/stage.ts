import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { Registry } from "prom-client";
import type { Alert } from "./alert.js";
import type { Bus, Topics } from "./bus/types.js";
import type { Config } from "./config.js";
import { parseListen } from "./config.js";
import type { Logger } from "./logger.js";

/**
 * What every stage is given when it starts (docs/architecture.md). The runner owns these; a stage owns only what it
 * creates itself (the ingest its spool, dedup memory and TLS reload; the detector its rule pack).
 */
export interface StageContext {
  readonly bus: Bus;
  readonly topics: Topics;
  readonly config: Config;
  readonly logger: Logger;
  /** The process's one registry, served on /metrics: a stage registers its metrics here. */
  readonly metrics: Registry;
  /** Aborted when the runner stops: long waits and retries end with it. */
  readonly shutdown: AbortSignal;
  /** /metrics, /healthz and /readyz, for a stage that serves HTTP itself (the ingest, on its webhook port). */
  readonly ops: OpsEndpoints;
  /** Alerts raised in this process, for the CLI's alerts file or stdout. */
  readonly onAlerts?: (alerts: Alert[]) => void;
}

/** One stage of the pipeline (ingest, detector, window stage, shipper): one shape, started and stopped by the runner. */
export interface Stage {
  /** Short and stable: it names the stage in logs and in /readyz. */
  readonly name: string;
  start(context: StageContext): Promise<void>;
  /** Whether the stage can do its work now (its peers reachable), for /readyz. */
  ready(): Promise<boolean>;
  /**
   * Finishes what is in flight and releases what start took. Called once, in reverse start order; also after a start
   * that failed half-way, so it releases only what it has.
   */
  stop(): Promise<void>;
  /** Details for /readyz (e.g. the ingest's spooled bytes), shown only to authorized readers. */
  readyDetails?(): Record<string, unknown>;
}

export interface OpsResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/** The operational endpoints, implemented once and mounted wherever the process listens. */
export interface OpsEndpoints {
  /** The response for GET `path` (/metrics, /healthz, /readyz), or undefined for any other path. */
  respond(path: string, authorization: string | undefined): Promise<OpsResponse | undefined>;
}

export interface RunnerOptions {
  bus: Bus;
  topics: Topics;
  config: Config;
  logger: Logger;
  onAlerts?: (alerts: Alert[]) => void;
  /** Whether a request may read /metrics and /readyz details (a metrics token); open when absent. */
  authorizeMetrics?: (authorization: string | undefined) => boolean;
  /** Serve the ops endpoints on this host:port (stages that do not serve HTTP themselves). */
  opsListen?: string;
}

export interface RunningStages {
  readonly metrics: Registry;
  /** The ops server's /metrics URL when `opsListen` was given. */
  readonly opsUrl?: string;
  /** Stops the stages in reverse start order, then the ops server, then closes the bus. */
  stop(): Promise<void>;
}

const json = (status: number, value: unknown, headers: Record<string, string> = {}): OpsResponse => ({
  status,
  headers: { "content-type": "application/json; charset=utf-8", ...headers },
  body: JSON.stringify(value),
});

/**
 * /healthz (the process answers), /readyz (every stage ready; which are not, and their details for authorized
 * readers) and /metrics (the registry; a metrics token when one is set). The one implementation of them.
 */
export function createOpsEndpoints(
  stages: readonly Pick<Stage, "name" | "ready" | "readyDetails">[],
  metrics: Registry,
  options: { authorizeMetrics?: (authorization: string | undefined) => boolean } = {},
): OpsEndpoints {
  const authorized = (authorization: string | undefined) => options.authorizeMetrics?.(authorization) ?? true;
  return {
    async respond(path, authorization) {
      if (path === "/healthz") return json(200, { status: "ok" });
      if (path === "/readyz") {
        const states = await Promise.all(stages.map(async (s) => [s.name, await s.ready().catch(() => false)] as const));
        const waiting = states.filter(([, ready]) => !ready).map(([name]) => name);
        const ready = waiting.length === 0;
        const details = authorized(authorization)
          ? Object.assign({ stages: Object.fromEntries(states) }, ...stages.map((s) => s.readyDetails?.() ?? {}))
          : {};
        return json(ready ? 200 : 503, { status: ready ? "ready" : `not ready: ${waiting.join(", ")}`, ...details });
      }
      if (path === "/metrics") {
        if (!authorized(authorization))
          return json(401, { error: "missing or invalid metrics token" }, { "www-authenticate": 'Bearer realm="k8s-audit-metrics"' });
        return { status: 200, headers: { "content-type": metrics.contentType }, body: await metrics.metrics() };
      }
      return undefined;
    },
  };
}

async function serveOps(listen: string, ops: OpsEndpoints): Promise<Server> {
  const { host, port } = parseListen(listen);
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const path = (req.url ?? "/").split("?")[0] ?? "/";
    ops.respond(path, req.headers.authorization).then(
      (answer) => {
        if (!answer) res.writeHead(404).end();
        else res.writeHead(answer.status, answer.headers).end(answer.body);
      },
      () => res.writeHead(500).end(),
    );
  });
  await new Promise<void>((resolve, reject) => server.once("error", reject).listen(port, host, resolve));
  return server;
}

/**
 * Starts the stages in order on one bus (consumers before the ingest, so nothing is accepted that no one reads) and
 * returns their one stop, which runs in reverse order. A stage that fails to start is stopped, then those started
 * before it.
 */
export async function runStages(stages: readonly Stage[], options: RunnerOptions): Promise<RunningStages> {
  const metrics = new Registry();
  const shutdown = new AbortController();
  const ops = createOpsEndpoints(stages, metrics, options);
  const context: StageContext = {
    bus: options.bus,
    topics: options.topics,
    config: options.config,
    logger: options.logger,
    metrics,
    shutdown: shutdown.signal,
    ops,
    ...(options.onAlerts ? { onAlerts: options.onAlerts } : {}),
  };
  const started: Stage[] = [];
  let server: Server | undefined;
  const stopAll = async () => {
    shutdown.abort();
    server?.close();
    for (const stage of [...started].reverse()) {
      try {
        await stage.stop();
      } catch (err) {
        options.logger.error({ err, stage: stage.name }, "stage did not stop cleanly");
      }
    }
    await options.bus.close();
  };
  try {
    for (const stage of stages) {
      // Before start: a stage that fails half-way (the ingest's spool open, its port taken) is stopped too.
      started.push(stage);
      await stage.start(context);
    }
    if (options.opsListen) server = await serveOps(options.opsListen, ops);
  } catch (err) {
    await stopAll();
    throw err;
  }
  const address = server?.address();
  const opsUrl =
    typeof address === "object" && address
      ? `http://${address.family === "IPv6" ? `[${address.address}]` : address.address}:${address.port}/metrics`
      : undefined;
  return { metrics, ...(opsUrl ? { opsUrl } : {}), stop: stopAll };
}
