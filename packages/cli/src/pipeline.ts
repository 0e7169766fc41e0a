import { createServer, type Server } from "node:http";
import {
  type Alert,
  type Config,
  consumerGroupsOf,
  createBus,
  type Logger,
  parseListen,
  type Subscription,
  topicsOf,
} from "@k8s-audit/core";
import { createDetectorMetrics, Detector, type DetectorMetrics, startDetectorService, startWindowService } from "@k8s-audit/detector";
import { checkIngestConfig, createIngestServer, RecentEvents, Spool, TokenSet, warmRecentEvents, watchTokenFile } from "@k8s-audit/ingest";
import { loadDetection } from "@k8s-audit/rules";
import { createElasticsearchClient, startShipperService } from "@k8s-audit/shipper";

export interface StageSelection {
  ingest: boolean;
  detect: boolean;
  ship: boolean;
  /**
   * On Kafka, run only one half of detection: the per-event detector (events → partial counts and alerts on the
   * windows topic) or the window stage (windows topic → timed-rule alerts and storms). Both when unset.
   */
  detectOnly?: "events" | "windows";
}

export interface RunningPipeline {
  /** Webhook URL when the ingest runs. */
  url?: string;
  /** Metrics URL when a stage without the ingest serves its own (K8S_AUDIT_METRICS_LISTEN). */
  metricsUrl?: string;
  busKind: "kafka" | "memory";
  stop(): Promise<void>;
}

/** The site's rule and Sigma folders from the configuration (the shipped pack is always loaded). */
export function detectionDirs(config: Config): { rulesDirs: string[]; sigmaDirs: string[] } {
  return {
    rulesDirs: config.K8S_AUDIT_RULES_DIR ? [config.K8S_AUDIT_RULES_DIR] : [],
    sigmaDirs: config.K8S_AUDIT_SIGMA_DIR ? [config.K8S_AUDIT_SIGMA_DIR] : [],
  };
}

/**
 * /metrics and /healthz for a stage that runs without the ingest's HTTP server. With K8S_AUDIT_METRICS_TOKEN_FILE,
 * /metrics wants one of its tokens, as the ingest's does.
 */
async function serveMetrics(listen: string, registry: DetectorMetrics["registry"], logger: Logger, tokensFile?: string): Promise<Server> {
  const { host, port } = parseListen(listen);
  const tokens = tokensFile ? TokenSet.fromFile(tokensFile) : undefined;
  const stopWatching = tokensFile && tokens ? watchTokenFile(tokensFile, tokens, logger) : undefined;
  const server = createServer((req, res) => {
    if (req.url === "/healthz") {
      res.writeHead(200, { "content-type": "application/json" }).end('{"status":"ok"}');
      return;
    }
    if (req.url !== "/metrics") {
      res.writeHead(404).end();
      return;
    }
    if (tokens && !tokens.verifyAuthorization(req.headers.authorization)) {
      res.writeHead(401, { "www-authenticate": 'Bearer realm="k8s-audit-metrics"' }).end();
      return;
    }
    registry.metrics().then(
      (text) => res.writeHead(200, { "content-type": registry.contentType }).end(text),
      () => res.writeHead(500).end(),
    );
  });
  server.once("close", () => stopWatching?.());
  await new Promise<void>((resolve, reject) => server.once("error", reject).listen(port, host, resolve));
  return server;
}

/** Wires the selected stages onto one bus. Used by every CLI subcommand; `start` selects them all. */
export async function startPipeline(options: {
  config: Config;
  stages: StageSelection;
  logger: Logger;
  onAlerts?: (alerts: Alert[]) => void;
}): Promise<RunningPipeline> {
  const { config, stages, logger } = options;
  const bus = createBus(config, logger);
  const topics = topicsOf(config);
  const groups = consumerGroupsOf(config);
  if (bus.kind === "memory" && !(stages.ingest && stages.detect)) {
    throw new Error("without KAFKA_BROKERS the stages can only run together (k8s-audit start): set KAFKA_BROKERS to run them apart");
  }
  await bus.ensureTopics([topics.events, topics.alerts, topics.deadLetter]);
  const subscriptions: Subscription[] = [];
  let server: ReturnType<typeof createIngestServer> | undefined;
  let detectorMetrics: DetectorMetrics | undefined;
  let metricsServer: Server | undefined;
  let spool: Spool | undefined;
  let url: string | undefined;

  try {
    if (stages.ship) {
      if (!config.ELASTICSEARCH_URL) {
        if (!stages.detect) throw new Error("k8s-audit ship needs ELASTICSEARCH_URL");
      } else {
        const es = createElasticsearchClient(config.ELASTICSEARCH_URL, config.ELASTICSEARCH_API_KEY);
        subscriptions.push(
          await startShipperService({
            bus,
            topics,
            es,
            logger,
            namespace: config.K8S_AUDIT_ES_NAMESPACE,
            shipEvents: config.K8S_AUDIT_SHIP_EVENTS,
            maxBulkBytes: config.K8S_AUDIT_BULK_MAX_BYTES,
            groupId: groups.shipper,
          }),
        );
        logger.info({ elasticsearch: config.ELASTICSEARCH_URL }, "shipper running");
      }
    }
    if (stages.detect) {
      detectorMetrics = createDetectorMetrics();
      const pack = loadDetection(detectionDirs(config));
      // On Kafka the timed rules are repartitioned by key (any number of detector processes give the same answer);
      // in one process the detector counts them itself.
      const scaleOut = bus.kind === "kafka";
      if (stages.detectOnly && !scaleOut) throw new Error("detect --only needs KAFKA_BROKERS (the halves meet on the windows topic)");
      const runEvents = stages.detectOnly !== "windows";
      const runWindows = scaleOut && stages.detectOnly !== "events";
      // Scale-out: the window stage folds storms too, seeing all of a principal's alerts of a rule.
      const maxFutureSkewMs = config.K8S_AUDIT_MAX_CLOCK_SKEW_SECONDS * 1000;
      const detector = new Detector(
        pack.rules,
        scaleOut ? { stormWindowMs: 0, maxFutureSkewMs } : { windowRules: pack.windowRules, maxFutureSkewMs },
      );
      if (runEvents) {
        subscriptions.push(
          await startDetectorService({
            bus,
            topics,
            detector,
            logger,
            groupId: groups.detector,
            onAlerts: options.onAlerts,
            metrics: detectorMetrics,
            ...(scaleOut ? { repartition: { windowRules: pack.windowRules, maxFutureSkewMs } } : {}),
          }),
        );
      }
      if (runWindows) {
        subscriptions.push(
          await startWindowService({
            bus,
            topics,
            windowRules: pack.windowRules,
            engine: { maxFutureSkewMs },
            logger,
            groupId: groups.windows,
            onAlerts: options.onAlerts,
            metrics: detectorMetrics,
          }),
        );
      }
      logger.info(
        { rules: detector.rules.length, timedRules: pack.windowRules.length, parts: stages.detectOnly ?? "events+windows" },
        "detector running",
      );
    }
    if (stages.ingest) {
      const listen = parseListen(config.K8S_AUDIT_LISTEN);
      const tls = config.K8S_AUDIT_TLS_CERT && config.K8S_AUDIT_TLS_KEY;
      // Safe defaults (docs/security.md): off loopback, TLS and a client authenticator unless opted out by name.
      const check = checkIngestConfig(config, listen.host);
      if (check.error) throw new Error(check.error);
      for (const warning of check.warnings) logger.warn(warning);
      if (bus.kind === "kafka" && config.K8S_AUDIT_SPOOL_MAX_BYTES > 0) {
        spool = new Spool(config.K8S_AUDIT_SPOOL_DIR, config.K8S_AUDIT_SPOOL_MAX_BYTES, bus, logger);
        spool.start();
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
          spool,
          logger,
        });
      }
      server = createIngestServer({
        bus,
        topics,
        logger,
        defaultCluster: config.K8S_AUDIT_CLUSTER,
        bodyLimitBytes: config.K8S_AUDIT_BODY_LIMIT_BYTES,
        maxInflightBytes: config.K8S_AUDIT_MAX_INFLIGHT_BYTES,
        maxEventBytes: config.K8S_AUDIT_MAX_EVENT_BYTES,
        maxFutureSkewMs: config.K8S_AUDIT_MAX_CLOCK_SKEW_SECONDS * 1000,
        redact: config.K8S_AUDIT_REDACT,
        spool,
        moreMetrics: detectorMetrics ? [detectorMetrics.registry] : [],
        ...(dedup ? { dedup } : {}),
        maxEventDepth: config.K8S_AUDIT_MAX_EVENT_DEPTH,
        requestTimeoutMs: config.K8S_AUDIT_REQUEST_TIMEOUT_SECONDS * 1000,
        headersTimeoutMs: config.K8S_AUDIT_HEADERS_TIMEOUT_SECONDS * 1000,
        keepAliveTimeoutMs: config.K8S_AUDIT_KEEPALIVE_TIMEOUT_SECONDS * 1000,
        idleTimeoutMs: config.K8S_AUDIT_IDLE_TIMEOUT_SECONDS * 1000,
        maxConnections: config.K8S_AUDIT_MAX_CONNECTIONS,
        maxConnectionsPerClient: config.K8S_AUDIT_MAX_CONNECTIONS_PER_CLIENT,
        minBodyBytesPerSecond: config.K8S_AUDIT_MIN_BODY_BYTES_PER_SECOND,
        ...(config.K8S_AUDIT_TOKENS_FILE ? { tokensFile: config.K8S_AUDIT_TOKENS_FILE } : {}),
        ...(config.K8S_AUDIT_METRICS_TOKEN_FILE ? { metricsTokensFile: config.K8S_AUDIT_METRICS_TOKEN_FILE } : {}),
        ...(tls
          ? {
              tls: {
                cert: config.K8S_AUDIT_TLS_CERT as string,
                key: config.K8S_AUDIT_TLS_KEY as string,
                clientCa: config.K8S_AUDIT_TLS_CLIENT_CA,
                allowedSubjects: config.K8S_AUDIT_TLS_ALLOWED_SUBJECTS,
              },
            }
          : {}),
      });
      await server.listen({ host: listen.host, port: listen.port });
      const address = server.server.address();
      const port = typeof address === "object" && address ? address.port : listen.port;
      const host = listen.host.includes(":") ? `[${listen.host}]` : listen.host;
      url = `${tls ? "https" : "http"}://${host}:${port}/audit`;
    }
    if (!stages.ingest && detectorMetrics && config.K8S_AUDIT_METRICS_LISTEN) {
      metricsServer = await serveMetrics(
        config.K8S_AUDIT_METRICS_LISTEN,
        detectorMetrics.registry,
        logger,
        config.K8S_AUDIT_METRICS_TOKEN_FILE,
      );
      logger.info({ listen: config.K8S_AUDIT_METRICS_LISTEN }, "detector metrics on /metrics");
    }
  } catch (err) {
    metricsServer?.close();
    await Promise.allSettled(subscriptions.map((s) => s.stop()));
    await server?.close();
    await spool?.stop();
    await bus.close();
    throw err;
  }

  const metricsAddress = metricsServer?.address();
  const metricsUrl =
    typeof metricsAddress === "object" && metricsAddress
      ? `http://${metricsAddress.family === "IPv6" ? `[${metricsAddress.address}]` : metricsAddress.address}:${metricsAddress.port}/metrics`
      : undefined;
  return {
    url,
    metricsUrl,
    busKind: bus.kind,
    // Order matters: stop accepting and finish in-flight requests, give the spool a chance to drain, then stop the
    // consumers and close the bus (which flushes the producer). What stays in the spool is sent on the next start.
    stop: async () => {
      metricsServer?.close();
      await server?.close();
      if (spool) {
        await spool.flush(10_000);
        await spool.stop();
      }
      for (const s of subscriptions) await s.stop();
      await bus.close();
    },
  };
}
