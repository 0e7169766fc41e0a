#!/usr/bin/env node
import { join } from "node:path";
import { ELASTICSEARCH_VERSION, KAFKA_VERSION } from "./paths.js";
import { ENGINES_DIR, engineStatus, ensureEngines, paths, stopEngines } from "./services.js";
import { EngineError } from "./system.js";

/** `pnpm services:up|down|status`: the real engines on 127.0.0.1 for tests and development. */
async function main(command: string | undefined): Promise<number> {
  switch (command) {
    case "up": {
      // services:up always manages the local engines, whatever KAFKA_BROKERS / ELASTICSEARCH_URL say.
      const engines = await ensureEngines({});
      console.log(`KAFKA_BROKERS=${engines.kafkaBrokers}`);
      console.log(`ELASTICSEARCH_URL=${engines.elasticsearchUrl}`);
      return 0;
    }
    case "down":
      await stopEngines();
      return 0;
    case "status": {
      const rows = await engineStatus();
      for (const r of rows) {
        const version = r.engine === "kafka" ? KAFKA_VERSION : ELASTICSEARCH_VERSION;
        console.log(
          `${r.engine.padEnd(14)} ${version.padEnd(8)} ${r.address.padEnd(24)} ${r.reachable ? "up" : "down"}${r.pid ? `  pid ${r.pid}` : ""}`,
        );
      }
      console.log(`engines folder: ${ENGINES_DIR}; logs: ${paths.logs}`);
      return rows.every((r) => r.reachable) ? 0 : 3;
    }
    default:
      console.error(`usage: engines up|down|status   (folder ${ENGINES_DIR}, logs ${join(ENGINES_DIR, "logs")})`);
      return 2;
  }
}

main(process.argv[2]).then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(err instanceof EngineError ? `error: ${err.message}` : err);
    process.exit(1);
  },
);
