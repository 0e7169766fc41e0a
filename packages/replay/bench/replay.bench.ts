/**
 * pnpm bench:replay — offline detection (the full pack) over a generated JSON-lines audit log of several hundred MB,
 * on one core, against a bare read-lines + JSON.parse pass over the same file. Prints last `replay_events_per_s=<n>`.
 */
import { createReadStream, createWriteStream, existsSync, mkdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { syntheticAuditEvent } from "@k8s-audit/core";
import { Detector } from "@k8s-audit/detector";
import { loadRulePack } from "@k8s-audit/rules";
import { replay } from "../src/index.js";

const TARGET_MB = Number(process.env.BENCH_REPLAY_MB ?? 300);
/** The reorder buffer per log (replay's default unless set): what holding events back for the time-order merge costs. */
const REORDER_BUFFER = process.env.BENCH_REPLAY_REORDER ? Number(process.env.BENCH_REPLAY_REORDER) : undefined;
const DIR = join(new URL("../../..", import.meta.url).pathname, ".bench");
const FILE = join(DIR, `replay-${TARGET_MB}mb.log`);

async function generate(): Promise<void> {
  if (existsSync(FILE) && statSync(FILE).size >= TARGET_MB * 1024 * 1024) return;
  mkdirSync(DIR, { recursive: true });
  const out = createWriteStream(FILE);
  let bytes = 0;
  for (let i = 0; bytes < TARGET_MB * 1024 * 1024; i++) {
    const line = `${JSON.stringify(syntheticAuditEvent(i))}\n`;
    bytes += line.length;
    if (!out.write(line)) await new Promise<void>((r) => out.once("drain", () => r()));
  }
  await new Promise<void>((r) => out.end(() => r()));
}

async function main() {
  await generate();
  const mb = statSync(FILE).size / 1048576;
  console.log(`replay bench: ${FILE} (${mb.toFixed(0)} MB)`);

  let t0 = performance.now();
  let parsed = 0;
  for await (const line of createInterface({ input: createReadStream(FILE), crlfDelay: Number.POSITIVE_INFINITY })) {
    if (JSON.parse(line)) parsed++;
  }
  const bareSeconds = (performance.now() - t0) / 1000;
  console.log(`bare read + JSON.parse: ${Math.round(parsed / bareSeconds)} events/s`);

  const pack = loadRulePack();
  t0 = performance.now();
  const cpu0 = process.cpuUsage();
  let alerts = 0;
  const summary = await replay({
    inputs: [FILE],
    defaultCluster: "bench",
    reorderBuffer: REORDER_BUFFER,
    detector: new Detector(pack.rules, { windowRules: pack.windowRules }),
    onAlerts: (a) => {
      alerts += a.length;
    },
  });
  const seconds = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  const rate = summary.eventsRead / seconds;
  console.log(
    `replay with detection: ${summary.eventsRead} events, ${summary.malformed} malformed, ${alerts} alerts in ${seconds.toFixed(1)} s (${(mb / seconds).toFixed(0)} MB/s)`,
  );
  // CPU time (all threads: GC helpers too) is steadier than wall time on a machine shared with other work.
  console.log(`replay_events_per_cpu_s=${Math.round(summary.eventsRead / ((cpu.user + cpu.system) / 1e6))}`);
  console.log(`replay_events_per_s=${Math.round(rate)}`);
  console.log(`replay_ratio=${(rate / (parsed / bareSeconds)).toFixed(2)}`);
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
