import type { Alert, Bus, Logger } from "@k8s-audit/core";
import type { DetectorMetrics } from "./metrics.js";

/**
 * Publishes alerts to the alerts topic, keyed by their id (alongside any other publishes of the same batch), then
 * counts them and hands them to the caller (the CLI prints them). The detector and the window stage both publish so.
 */
export function alertPublisher(options: {
  bus: Bus;
  topic: string;
  logger: Logger;
  metrics?: DetectorMetrics;
  onAlerts?: (alerts: Alert[]) => void;
}) {
  return async (alerts: Alert[], alongside: Promise<void>[] = []): Promise<void> => {
    await Promise.all([
      options.bus.publish(
        options.topic,
        alerts.map((a) => ({ key: a.event.id, value: JSON.stringify(a) })),
      ),
      ...alongside,
    ]);
    if (alerts.length === 0) return;
    for (const a of alerts) options.metrics?.alerts.inc({ rule: a.rule.id });
    options.logger.debug({ alerts: alerts.length }, "alerts published");
    options.onAlerts?.(alerts);
  };
}
