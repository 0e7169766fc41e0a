/**
 * pnpm bench:detector — the detector stage with the full rule pack, consuming from the real Kafka and publishing its
 * alerts there, against a bare consume + JSON.parse loop over the same records in the same run.
 * Prints events/s for both and last `detector_ratio=<detector / bare>`.
 */
import { randomUUID } from "node:crypto";
import { type AuditEvent, createLogger, KafkaBus, syntheticAuditEvent } from "@k8s-audit/core";
import { KAFKA_BROKERS, startKafka } from "@k8s-audit/engines";
import { loadRulePack } from "@k8s-audit/rules";
import { Detector, startDetectorService, startWindowService } from "../src/index.js";

const EVENTS = Number(process.env.BENCH_EVENTS ?? 200_000);
const logger = createLogger({ level: "warn" });

class CountingDetector extends Detector {
  count = 0;
  override evaluate(event: AuditEvent) {
    this.count++;
    return super.evaluate(event);
  }
}

async function until(done: () => boolean, timeoutMs = 300_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!done()) {
    if (Date.now() > deadline) throw new Error("benchmark did not finish in time");
    await new Promise((r) => setTimeout(r, 5));
  }
}

async function main() {
  let brokers = process.env.KAFKA_BROKERS;
  if (!brokers) {
    await startKafka((m) => console.error(`[engines] ${m}`));
    brokers = KAFKA_BROKERS;
  }
  const bus = new KafkaBus({ brokers: brokers.split(","), clientId: "bench-detector", logger });
  const id = randomUUID().slice(0, 8);
  const topics = {
    events: `bench-detector-${id}.events`,
    alerts: `bench-detector-${id}.alerts`,
    deadLetter: `bench-detector-${id}.dlq`,
    windows: `bench-detector-${id}.windows`,
  };
  await bus.ensureTopics(Object.values(topics));
  for (let i = 0; i < EVENTS; i += 2000) {
    const chunk = Array.from(
      { length: Math.min(2000, EVENTS - i) },
      (_, j) => ({ ...syntheticAuditEvent(i + j), cluster: "bench" }) as Record<string, unknown> & { auditID: string },
    );
    await bus.publish(
      topics.events,
      chunk.map((e) => ({ key: `bench/${e.auditID}`, value: JSON.stringify(e) })),
    );
  }
  const { rules, windowRules } = loadRulePack();
  console.log(
    `detector bench: ${EVENTS} events on ${topics.events} (3 partitions), ${rules.length} rules + ${windowRules.length} windowed rules, Kafka ${brokers}`,
  );

  // Baseline: consume and JSON.parse, nothing else, with the detector stage's fetch settings. Measured before and after
  // the detector runs and the faster taken: a cold first pass (JIT, broker page cache) would flatter the ratios.
  const measureBare = async (label: string) => {
    let parsed = 0;
    const t0 = performance.now();
    const bare = await bus.consume({
      topic: topics.events,
      groupId: `bench-bare-${label}-${id}`,
      partitionsConcurrently: 3,
      maxBytesPerPartition: 4 * 1024 * 1024,
      eachBatch: async (messages) => {
        for (const m of messages) if (JSON.parse(m.value)) parsed++;
      },
    });
    await until(() => parsed >= EVENTS);
    const seconds = (performance.now() - t0) / 1000;
    await bare.stop();
    return EVENTS / seconds;
  };
  const bareBefore = await measureBare("before");

  // The detector stage: parse, check, evaluate every rule, publish alerts, commit. Once with the per-event rules only,
  // once with the windowed rules too (the full detector), each from the start of the topic with its own group.
  // The third run is the scale-out deployment `k8s-audit detect` uses on Kafka: timed rules counted per batch and
  // published as partial counts to the internal windows topic, added up by the window stage (in the same process here).
  const measure = async (label: string, windows: "none" | "inline" | "repartition") => {
    // Scale-out: the window stage folds storms, so the detector does not.
    const detector = new CountingDetector(
      rules,
      windows === "inline" ? { windowRules } : windows === "repartition" ? { stormWindowMs: 0 } : {},
    );
    let alerts = 0;
    const t = performance.now();
    const onAlerts = (a: unknown[]) => {
      alerts += a.length;
    };
    const stages = [
      await startDetectorService({
        bus,
        topics,
        detector,
        logger,
        groupId: `bench-${label}-${id}`,
        onAlerts,
        ...(windows === "repartition" ? { repartition: { windowRules } } : {}),
      }),
      ...(windows === "repartition"
        ? [await startWindowService({ bus, topics, windowRules, logger, groupId: `bench-${label}-windows-${id}`, onAlerts })]
        : []),
    ];
    await until(() => detector.count >= EVENTS);
    const seconds = (performance.now() - t) / 1000;
    for (const s of stages) await s.stop();
    return { rate: EVENTS / seconds, alerts };
  };
  const eventRules = await measure("event-rules", "none");
  const inline = await measure("inline", "inline");
  const full = await measure("full", "repartition");

  const bareAfter = await measureBare("after");
  await bus.close();
  const bareRate = Math.max(bareBefore, bareAfter);
  console.log(
    `bare consume + JSON.parse: ${Math.round(bareBefore)} events/s before, ${Math.round(bareAfter)} after; the faster is the baseline`,
  );
  console.log(
    `detector, per-event rules only: ${Math.round(eventRules.rate)} events/s, ${eventRules.alerts} alerts (detector_event_rules_ratio=${(eventRules.rate / bareRate).toFixed(2)})`,
  );
  console.log(
    `detector, full pack, windows counted in the same process: ${Math.round(inline.rate)} events/s, ${inline.alerts} alerts (detector_inline_ratio=${(inline.rate / bareRate).toFixed(2)})`,
  );
  console.log(`detector, full pack, scale-out (partial counts → windows topic → window stage): ${Math.round(full.rate)} events/s`);
  console.log(`detector_ratio=${(full.rate / bareRate).toFixed(2)}`);
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
