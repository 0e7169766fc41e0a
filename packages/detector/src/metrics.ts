import { sumGauges, type WindowGauges, type WindowStats } from "@k8s-audit/windows";
import { Counter, Gauge, Registry } from "prom-client";

const WINDOW_COUNTERS: Record<keyof WindowStats, string> = {
  lateEvents: "Events older than their window's lateness allowance, dropped",
  evictedKeys: "Keys forgotten because a rule reached its cap of remembered keys",
  sketchedEvents: "Events counted only in a window's count-min sketch (the long tail beyond the exact keys)",
  promotedKeys: "Tail keys that reached a rule's floor in the sketch and became exact (heavy hitters)",
  droppedEvents: "Events of tail keys a sketch cannot count (distinct, ratio, sequence, silence rules), dropped",
  futureEvents: "Events stamped further ahead of the receiving clock than the allowed skew: judged, but not counted in windows",
};

const snake = (s: string) => s.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);

/** The metrics already registered on a registry: the detector and window stages of one process share them. */
const onRegistry = new WeakMap<Registry, DetectorMetrics>();

/** The detector's metrics on the process's registry, created by whichever detector stage starts first. */
export function detectorMetricsOn(registry: Registry): DetectorMetrics {
  let metrics = onRegistry.get(registry);
  if (!metrics) {
    metrics = createDetectorMetrics(registry);
    onRegistry.set(registry, metrics);
  }
  return metrics;
}

/** The detector's Prometheus metrics, on a registry of their own unless given one (several pipelines in one process must not collide). */
export function createDetectorMetrics(registry: Registry = new Registry()) {
  const prefix = "k8s_audit_detector_";
  const sources: (() => WindowGauges)[] = [];
  const total = (): WindowGauges => sumGauges(sources.map((source) => source()));
  // Engine counters are read at scrape time; each counter advances by what the engines added since the last scrape.
  const reported = new Map<keyof WindowStats, number>();
  for (const [key, help] of Object.entries(WINDOW_COUNTERS) as [keyof WindowStats, string][]) {
    new Counter({
      name: `k8s_audit_window_${snake(key)}_total`,
      help,
      registers: [registry],
      collect() {
        const now = total()[key];
        const delta = now - (reported.get(key) ?? 0);
        if (delta > 0) this.inc(delta);
        reported.set(key, Math.max(now, reported.get(key) ?? 0));
      },
    });
  }
  for (const [key, help] of [
    ["openKeys", "Keys with an open window, over all timed rules"],
    ["rememberedKeys", "Keys remembered across windows (baselines, sequence progress, silence), over all timed rules"],
  ] as const) {
    new Gauge({
      name: `k8s_audit_window_${snake(key)}`,
      help,
      registers: [registry],
      collect() {
        this.set(total()[key]);
      },
    });
  }
  return {
    registry,
    events: new Counter({ name: `${prefix}events_total`, help: "Events evaluated", registers: [registry] }),
    alerts: new Counter({ name: `${prefix}alerts_total`, help: "Alerts published, by rule", labelNames: ["rule"], registers: [registry] }),
    deadLetters: new Counter({ name: `${prefix}dead_letters_total`, help: "Records sent to the dead-letter topic", registers: [registry] }),
    /** Adds a window engine (or a window stage) to what the window metrics report. */
    watchWindows(source: () => WindowGauges): void {
      sources.push(source);
    },
  };
}

export type DetectorMetrics = ReturnType<typeof createDetectorMetrics>;
