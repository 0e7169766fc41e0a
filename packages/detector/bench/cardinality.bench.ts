/**
 * pnpm bench:cardinality — one million requests, each from a distinct source IP, user and client program, through the
 * full detector (per-event rules and every timed rule) over ten minutes of event time: the worst case for per-key
 * state. Exact keys are capped per window, the tail is counted in sketches and the remembered keys are capped, so
 * memory stays flat however many keys arrive. Prints the counters and the peak resident memory (`rss_mb=`), then, last,
 * `cardinality_ratio=`: events/s with every timed rule ÷ events/s of a baseline run of the same requests through the
 * per-event rules alone (no per-key state), i.e. what keeping cardinality bounded costs in throughput.
 *
 * The script runs under a 128 MB V8 old space (package.json), as a detector process should be run: V8 otherwise grows
 * the heap lazily with garbage long before collecting. Were the state unbounded, the run would end out of memory.
 */
import type { AuditEvent } from "@k8s-audit/core";
import { loadDetection } from "@k8s-audit/rules";
import { Detector } from "../src/index.js";

const EVENTS = Number(process.env.BENCH_EVENTS ?? 1_000_000);
const SPAN_MS = 10 * 60_000;
const T0 = Date.UTC(2026, 10, 28, 12, 0, 0);
const mb = (bytes: number) => bytes / 1024 / 1024;

/**
 * Request i: distinct address, user and user agent; one in fifty refused as unauthenticated. In minute 7 every 20th
 * request after the first 15 s comes from one runaway client, hidden in the tail (its windows are already full of
 * exact keys): the sketch must still promote and flag it. Written for this bench.
 */
function request(i: number): AuditEvent {
  const ms = Math.floor((i * SPAN_MS) / EVENTS);
  const time = new Date(T0 + ms).toISOString();
  const runaway = ms >= 7 * 60_000 + 15_000 && ms < 8 * 60_000 && i % 20 === 0;
  const unauthenticated = !runaway && i % 50 === 0;
  const who = runaway ? "tail-bot" : `user-${i}`;
  return {
    kind: "Event",
    apiVersion: "audit.k8s.io/v1",
    level: "Metadata",
    auditID: `card-${i}`,
    stage: "ResponseComplete",
    requestURI: "/api/v1/namespaces/default/configmaps",
    verb: "list",
    user: unauthenticated ? {} : { username: who, groups: ["system:authenticated"] },
    sourceIPs: [runaway ? "198.51.100.200" : `10.${(i >>> 16) & 255}.${(i >>> 8) & 255}.${i & 255}`],
    userAgent: runaway ? "tail-bot/1.0" : `client-${i}/1.0`,
    objectRef: { resource: "configmaps", namespace: "default", apiVersion: "v1" },
    responseStatus: { code: unauthenticated ? 401 : 200 },
    requestReceivedTimestamp: time,
    stageTimestamp: time,
    cluster: "bench",
  } as AuditEvent;
}

function main() {
  const pack = loadDetection();
  const detector = new Detector(pack.rules, { windowRules: pack.windowRules });
  const startRss = process.memoryUsage().rss;
  console.log(`node options: ${process.env.NODE_OPTIONS ?? "(none)"}`);
  console.log(
    `cardinality bench: ${EVENTS} events, each a new source IP, user and user agent, over ${SPAN_MS / 60_000} min; ${pack.rules.length} rules + ${pack.windowRules.length} timed rules`,
  );
  const t0 = performance.now();
  const flagged = new Map<string, number>();
  const note = (alerts: { rule: { id: string }; labels?: Record<string, string> }[]) => {
    for (const a of alerts)
      if (a.labels?.window_key)
        flagged.set(`${a.rule.id} ${a.labels.window_key}`, (flagged.get(`${a.rule.id} ${a.labels.window_key}`) ?? 0) + 1);
    return alerts.length;
  };
  let alerts = 0;
  let peak = startRss;
  for (let i = 0; i < EVENTS; i++) {
    alerts += note(detector.evaluate(request(i)));
    if ((i & 0xffff) === 0) {
      peak = Math.max(peak, process.memoryUsage().rss);
      if (i > 0 && i % 262_144 === 0) console.log(`  ${i} events: rss ${mb(process.memoryUsage().rss).toFixed(0)} MB`);
    }
  }
  alerts += note(detector.flush());
  const seconds = (performance.now() - t0) / 1000;
  peak = Math.max(peak, process.memoryUsage().rss, process.resourceUsage().maxRSS * 1024);
  const stats = detector.windows?.stats;
  console.log(`${Math.round(EVENTS / seconds)} events/s, ${alerts} alerts; windowed: ${[...flagged.keys()].join("; ") || "none"}`);
  console.log(`window engine: ${JSON.stringify(stats)}`);
  console.log(`rss at start ${mb(startRss).toFixed(0)} MB (runtime and rule pack), peak ${mb(peak).toFixed(0)} MB`);
  console.log(`rss_mb=${mb(peak).toFixed(0)}`);
  // Baseline after the measured run, so its garbage cannot inflate the peak above.
  const bare = new Detector(pack.rules);
  const b0 = performance.now();
  for (let i = 0; i < EVENTS; i++) bare.evaluate(request(i));
  bare.flush();
  const bareRate = EVENTS / ((performance.now() - b0) / 1000);
  console.log(`baseline (per-event rules only): ${Math.round(bareRate)} events/s`);
  console.log(`cardinality_ratio=${(EVENTS / seconds / bareRate).toFixed(2)}`);
}

main();
