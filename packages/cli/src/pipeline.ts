import { type Alert, type Config, createBus, type Logger, runStages, type Stage, topicsOf } from "@k8s-audit/core";
import { DetectorStage, WindowStage } from "@k8s-audit/detector";
import { IngestStage, TokenSet, watchTokenFile } from "@k8s-audit/ingest";
import { ShipperStage } from "@k8s-audit/shipper";

export { detectionDirs } from "@k8s-audit/detector";

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

/**
 * The stages a command runs, in start order: consumers first, the ingest last (nothing is accepted before the stages
 * that read it run); the runner stops them in reverse. Adding a stage is one entry here (docs/architecture.md).
 */
export function stagesFor(selection: StageSelection, config: Config, busKind: "kafka" | "memory"): Stage[] {
  const scaleOut = busKind === "kafka";
  if (!scaleOut && !(selection.ingest && selection.detect))
    throw new Error("without KAFKA_BROKERS the stages can only run together (k8s-audit start): set KAFKA_BROKERS to run them apart");
  if (selection.detectOnly && !scaleOut) throw new Error("detect --only needs KAFKA_BROKERS (the halves meet on the windows topic)");
  if (selection.ship && !selection.detect && !config.ELASTICSEARCH_URL) throw new Error("k8s-audit ship needs ELASTICSEARCH_URL");
  const stages: Stage[] = [];
  // `start` without Elasticsearch writes alerts to the alerts file only.
  if (selection.ship && config.ELASTICSEARCH_URL) stages.push(new ShipperStage());
  if (selection.detect && selection.detectOnly !== "windows") stages.push(new DetectorStage());
  if (selection.detect && scaleOut && selection.detectOnly !== "events") stages.push(new WindowStage());
  if (selection.ingest) stages.push(new IngestStage());
  return stages;
}

/** Whether a request may read /metrics and /readyz details: with K8S_AUDIT_METRICS_TOKEN_FILE, one of its tokens. */
function metricsAuthorizer(config: Config, logger: Logger): { authorize?: (authorization: string | undefined) => boolean; stop(): void } {
  const file = config.K8S_AUDIT_METRICS_TOKEN_FILE;
  if (!file) return { stop: () => {} };
  const tokens = TokenSet.fromFile(file);
  return { authorize: (authorization) => tokens.verifyAuthorization(authorization), stop: watchTokenFile(file, tokens, logger) };
}

/** Starts the selected stages on one bus through the one runner. Used by every CLI subcommand; `start` selects them all. */
export async function startPipeline(options: {
  config: Config;
  stages: StageSelection;
  logger: Logger;
  onAlerts?: (alerts: Alert[]) => void;
}): Promise<RunningPipeline> {
  const { config, logger } = options;
  const bus = createBus(config, logger);
  const topics = topicsOf(config);
  let stages: Stage[];
  try {
    stages = stagesFor(options.stages, config, bus.kind);
    await bus.ensureTopics([topics.events, topics.alerts, topics.deadLetter]);
  } catch (err) {
    await bus.close();
    throw err;
  }
  const metricsAuth = metricsAuthorizer(config, logger);
  const ingest = stages.find((s): s is IngestStage => s instanceof IngestStage);
  let running: Awaited<ReturnType<typeof runStages>>;
  try {
    running = await runStages(stages, {
      bus,
      topics,
      config,
      logger,
      ...(options.onAlerts ? { onAlerts: options.onAlerts } : {}),
      ...(metricsAuth.authorize ? { authorizeMetrics: metricsAuth.authorize } : {}),
      // The ingest serves the ops endpoints on its webhook port; other stages on K8S_AUDIT_METRICS_LISTEN when set.
      ...(!ingest && config.K8S_AUDIT_METRICS_LISTEN ? { opsListen: config.K8S_AUDIT_METRICS_LISTEN } : {}),
    });
  } catch (err) {
    metricsAuth.stop();
    throw err;
  }
  if (running.opsUrl) logger.info({ listen: config.K8S_AUDIT_METRICS_LISTEN }, "metrics on /metrics");
  return {
    ...(ingest?.url ? { url: ingest.url } : {}),
    ...(running.opsUrl ? { metricsUrl: running.opsUrl } : {}),
    busKind: bus.kind,
    stop: async () => {
      metricsAuth.stop();
      await running.stop();
    },
  };
}
