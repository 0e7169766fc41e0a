import { ensureEngines, stopEngines } from "@k8s-audit/engines";
// Imported so that tsc resolves the module the declaration below augments (nothing else here imports it).
import type {} from "vitest";
import type { TestProject } from "vitest/node";

/** The engines' addresses, handed to every e2e and fault test: `inject("kafkaBrokers")`, `inject("elasticsearchUrl")`. */
export interface EngineAddresses {
  kafkaBrokers: string;
  elasticsearchUrl: string;
}

declare module "vitest" {
  export interface ProvidedContext extends EngineAddresses {}
}

/**
 * Starts the real Kafka and Elasticsearch (or reuses running ones, or uses KAFKA_BROKERS / ELASTICSEARCH_URL).
 * Under CI the engines this run started are stopped at the end; on a workstation they stay up for the next run.
 */
export default async function setup(project: TestProject) {
  const started = Date.now();
  const engines = await ensureEngines();
  console.error(
    `[engines] ready in ${((Date.now() - started) / 1000).toFixed(1)} s: Kafka ${engines.kafkaBrokers}, Elasticsearch ${engines.elasticsearchUrl}`,
  );
  project.provide("kafkaBrokers", engines.kafkaBrokers);
  project.provide("elasticsearchUrl", engines.elasticsearchUrl);
  return async () => {
    // CI clones are thrown away: also remove Elasticsearch's folder when it had to live outside the clone.
    if (process.env.CI && engines.started.length > 0) await stopEngines(engines.started, { purge: true });
    else if (engines.started.length > 0) console.error("[engines] left running for the next run; `pnpm services:down` stops them");
  };
}
