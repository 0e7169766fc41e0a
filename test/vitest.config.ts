import { defineConfig } from "vitest/config";

/**
 * Three projects, run one group after another (sequence.groupOrder): `unit` (pure logic, no engines, seconds), `e2e`
 * (the real Kafka and Elasticsearch, started by the global setup unless KAFKA_BROKERS / ELASTICSEARCH_URL point at
 * running ones), then `faults` (docs/faults.md), which kills and freezes those same engines and so must never overlap
 * with e2e.
 */
const faults = {
  extends: true as const,
  test: {
    name: "faults",
    include: ["test/faults/**/*.test.ts"],
    globalSetup: ["packages/testkit/src/engines.global-setup.ts"],
    // One case at a time; a case runs seconds of load plus its outage (the broker's 30 s, Elasticsearch's 60 s).
    testTimeout: 400_000,
    hookTimeout: 120_000,
    fileParallelism: false,
    sequence: { groupOrder: 2 },
  },
};

export default defineConfig({
  test: {
    root: new URL("..", import.meta.url).pathname,
    reporters: [process.env.CI ? "verbose" : "default", "./packages/testkit/src/summary-reporter.ts"],
    projects: [
      {
        extends: true,
        test: {
          name: "unit",
          include: ["packages/*/test/**/*.test.ts", "test/unit/**/*.test.ts"],
        },
      },
      {
        extends: true,
        test: {
          name: "e2e",
          include: ["test/e2e/**/*.test.ts"],
          globalSetup: ["packages/testkit/src/engines.global-setup.ts"],
          testTimeout: 120_000,
          hookTimeout: 120_000,
          // The engines are shared; files run one at a time so their timing assertions are not skewed by each other.
          fileParallelism: false,
          // After unit, before faults. (Without an explicit order vitest runs a fileParallelism: false project last, after
          // every ordered group: faults would then kill the broker under e2e's feet.)
          sequence: { groupOrder: 1 },
        },
      },
      // K8S_AUDIT_SKIP_FAULTS=1 leaves it out (e.g. while others' tests share the same engines on a workstation).
      ...(process.env.K8S_AUDIT_SKIP_FAULTS ? [] : [faults]),
    ],
  },
});
