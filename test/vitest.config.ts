import { defineConfig } from "vitest/config";

/**
 * Two projects: `unit` (pure logic, no engines, seconds) and `e2e` (the real Kafka and Elasticsearch, started by the
 * global setup unless KAFKA_BROKERS / ELASTICSEARCH_URL point at running ones).
 */
export default defineConfig({
  test: {
    root: new URL("..", import.meta.url).pathname,
    reporters: [process.env.CI ? "verbose" : "default", "./test/support/summary-reporter.ts"],
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
          globalSetup: ["test/support/engines.global-setup.ts"],
          testTimeout: 120_000,
          hookTimeout: 120_000,
          // The engines are shared; files run one at a time so their timing assertions are not skewed by each other.
          fileParallelism: false,
        },
      },
    ],
  },
});
