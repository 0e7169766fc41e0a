import type { Bus, Config, Stage, StageContext, Subscription } from "@k8s-audit/core";
import { consumerGroupsOf } from "@k8s-audit/core";
import { type DetectionPack, loadDetection } from "@k8s-audit/rules";
import type { WindowEngineOptions } from "@k8s-audit/windows";
import { Detector, type DetectorOptions } from "./engine.js";
import { detectorMetricsOn } from "./metrics.js";
import { startDetectorService } from "./service.js";
import { startWindowService } from "./window-service.js";

/** The site's rule and Sigma folders from the configuration (the shipped pack is always loaded). */
export function detectionDirs(config: Config): { rulesDirs: string[]; sigmaDirs: string[] } {
  return {
    rulesDirs: config.K8S_AUDIT_RULES_DIR ? [config.K8S_AUDIT_RULES_DIR] : [],
    sigmaDirs: config.K8S_AUDIT_SIGMA_DIR ? [config.K8S_AUDIT_SIGMA_DIR] : [],
  };
}

/**
 * The detector's settings from the configuration, in one place: clock skew, storm folding and the window engine's
 * caps. `embedded`: one process sees every event, so it counts the timed rules and folds storms itself; scaled out,
 * the window stage does both.
 */
export function detectorOptions(config: Config, pack: DetectionPack, embedded: boolean): DetectorOptions {
  const maxFutureSkewMs = config.K8S_AUDIT_MAX_CLOCK_SKEW_SECONDS * 1000;
  if (!embedded) return { stormWindowMs: 0, maxFutureSkewMs };
  return {
    maxFutureSkewMs,
    stormWindowMs: config.K8S_AUDIT_STORM_WINDOW_SECONDS * 1000,
    windowRules: pack.windowRules,
    windowOptions: windowEngineOptions(config),
  };
}

/** The window engine's caps and allowed clock skew from the configuration. */
export function windowEngineOptions(config: Config): WindowEngineOptions {
  return {
    maxFutureSkewMs: config.K8S_AUDIT_MAX_CLOCK_SKEW_SECONDS * 1000,
    maxKeysPerWindow: config.K8S_AUDIT_WINDOW_MAX_KEYS,
    maxTrackedKeys: config.K8S_AUDIT_WINDOW_MAX_TRACKED_KEYS,
  };
}

/** What a detection stage may be given instead of what it reads from the configuration (tests, embedding). */
export interface DetectionStageOptions {
  /** The rules to run; by default the shipped pack plus the configuration's rule and Sigma folders. */
  pack?: DetectionPack;
  /** Called with the partitions this instance owns after each rebalance. */
  onAssignment?: (partitions: number[]) => void;
}

/** The pack of each configuration: the detector and window stages of one process load the rule files once. */
const packs = new WeakMap<Config, DetectionPack>();

function packFor(config: Config): DetectionPack {
  let pack = packs.get(config);
  if (!pack) {
    pack = loadDetection(detectionDirs(config));
    packs.set(config, pack);
  }
  return pack;
}

/** A stage that is one consumer on the bus: ready while the bus answers, stopped by stopping its subscription. */
abstract class ConsumerStage implements Stage {
  abstract readonly name: string;
  protected subscription?: Subscription;
  private bus?: Bus;

  constructor(protected readonly options: DetectionStageOptions = {}) {}

  async start(context: StageContext): Promise<void> {
    this.bus = context.bus;
    this.subscription = await this.subscribe(context, this.options.pack ?? packFor(context.config));
  }

  protected abstract subscribe(context: StageContext, pack: DetectionPack): Promise<Subscription>;

  async ready(): Promise<boolean> {
    return this.subscription !== undefined && (await this.bus?.ping()) === true;
  }

  async stop(): Promise<void> {
    await this.subscription?.stop();
  }
}

/**
 * The per-event detector: events topic → rules → alerts topic. On Kafka the timed rules' counts go to the windows
 * topic, repartitioned by key (WindowStage judges them, so any number of detector processes give the same answer); on
 * the in-memory bus one process sees everything and counts them itself, storms folded here.
 */
export class DetectorStage extends ConsumerStage {
  readonly name = "detector";

  protected async subscribe(context: StageContext, pack: DetectionPack): Promise<Subscription> {
    const { bus, topics, config, logger } = context;
    const scaleOut = bus.kind === "kafka";
    const maxFutureSkewMs = config.K8S_AUDIT_MAX_CLOCK_SKEW_SECONDS * 1000;
    const detector = new Detector(pack.rules, detectorOptions(config, pack, !scaleOut));
    const subscription = await startDetectorService({
      bus,
      topics,
      detector,
      logger,
      groupId: consumerGroupsOf(config).detector,
      partitionsConcurrently: config.K8S_AUDIT_DETECTOR_PARTITIONS_CONCURRENTLY,
      fetchBytes: config.K8S_AUDIT_DETECTOR_FETCH_BYTES,
      metrics: detectorMetricsOn(context.metrics),
      ...(context.onAlerts ? { onAlerts: context.onAlerts } : {}),
      ...(this.options.onAssignment ? { onAssignment: this.options.onAssignment } : {}),
      ...(scaleOut ? { repartition: { windowRules: pack.windowRules, maxFutureSkewMs } } : {}),
    });
    logger.info({ rules: detector.rules.length, timedRules: pack.windowRules.length, scaleOut }, "detector running");
    return subscription;
  }
}

/** The window stage (Kafka only): windows topic → timed-rule alerts and folded storms, per partition of rule and key. */
export class WindowStage extends ConsumerStage {
  readonly name = "windows";

  protected async subscribe(context: StageContext, pack: DetectionPack): Promise<Subscription> {
    const { bus, topics, config, logger } = context;
    if (bus.kind !== "kafka") throw new Error("the window stage needs KAFKA_BROKERS (it reads the windows topic)");
    const subscription = await startWindowService({
      bus,
      topics,
      windowRules: pack.windowRules,
      engine: windowEngineOptions(config),
      stormWindowMs: config.K8S_AUDIT_STORM_WINDOW_SECONDS * 1000,
      logger,
      groupId: consumerGroupsOf(config).windows,
      metrics: detectorMetricsOn(context.metrics),
      ...(context.onAlerts ? { onAlerts: context.onAlerts } : {}),
      ...(this.options.onAssignment ? { onAssignment: this.options.onAssignment } : {}),
    });
    logger.info({ timedRules: pack.windowRules.length }, "window stage running");
    return subscription;
  }
}
