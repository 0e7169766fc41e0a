import {
  type Alert,
  type Bus,
  type BusMessage,
  type Logger,
  looksLikeAuditEvent,
  type Subscription,
  type Topics,
  whyNotAnAuditEvent,
} from "@k8s-audit/core";
import type { Detector } from "./engine.js";

export interface DetectorServiceOptions {
  bus: Bus;
  topics: Topics;
  detector: Detector;
  logger: Logger;
  groupId?: string;
  /** Called with each batch's alerts after they are on the alerts topic (the CLI prints them). */
  onAlerts?: (alerts: Alert[]) => void;
}

/**
 * The detector stage: events topic → rules → alerts topic. A batch's offsets are committed only after its alerts are
 * acknowledged by the bus, so a crash re-evaluates rather than loses; re-evaluation is harmless (deterministic ids).
 */
export async function startDetectorService(options: DetectorServiceOptions): Promise<Subscription> {
  const { bus, topics, detector, logger } = options;
  await bus.ensureTopics([topics.events, topics.alerts, topics.deadLetter]);
  return bus.consume({
    topic: topics.events,
    groupId: options.groupId ?? "k8s-audit-detector",
    eachBatch: async (messages) => {
      const alerts: Alert[] = [];
      const deadLetters: BusMessage[] = [];
      for (const message of messages) {
        let parsed: unknown;
        try {
          parsed = JSON.parse(message.value);
        } catch {
          deadLetters.push(deadLetter(message.value, "detector: event is not JSON", message.key));
          continue;
        }
        if (!looksLikeAuditEvent(parsed)) {
          // Only a foreign or damaged record gets here; the full schema says exactly what is wrong with it.
          deadLetters.push(deadLetter(message.value, `detector: invalid event: ${whyNotAnAuditEvent(parsed)}`, message.key));
          continue;
        }
        alerts.push(...detector.evaluate(parsed));
      }
      alerts.push(...detector.expire());
      await Promise.all([
        bus.publish(
          topics.alerts,
          alerts.map((a) => ({ key: a.event.id, value: JSON.stringify(a) })),
        ),
        bus.publish(topics.deadLetter, deadLetters),
      ]);
      if (alerts.length > 0) {
        logger.debug({ alerts: alerts.length }, "alerts published");
        options.onAlerts?.(alerts);
      }
    },
  });
}

function deadLetter(raw: string, reason: string, key?: string): BusMessage {
  return { key, value: raw, headers: { "x-k8s-audit-reason": reason, "x-k8s-audit-stage": "detector" } };
}
