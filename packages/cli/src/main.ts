import { type ConfigInput, createLogger, loadConfig } from "@k8s-audit/core";
import { runEvasionTests, runRuleTests, runTimedRuleTests } from "@k8s-audit/detector";
import { writeKitCertificates } from "@k8s-audit/ingest";
import { loadDetection } from "@k8s-audit/rules";
import { Command } from "commander";
import { createAlertOutput } from "./alert-output.js";
import { type StageSelection, startPipeline } from "./pipeline.js";
import { type ReplayFlags, runReplay } from "./replay-command.js";
import { setup } from "./setup.js";

interface RunFlags {
  listen?: string;
  cluster?: string;
}

async function runStages(stages: StageSelection, flags: RunFlags, printAlerts: boolean): Promise<void> {
  const overrides: ConfigInput = { K8S_AUDIT_LISTEN: flags.listen, K8S_AUDIT_CLUSTER: flags.cluster };
  const config = loadConfig(process.env, overrides);
  const logger = createLogger({ level: config.LOG_LEVEL });
  const onAlerts = printAlerts ? createAlertOutput({ file: config.K8S_AUDIT_ALERTS_FILE }) : undefined;
  const pipeline = await startPipeline({ config, stages, logger, onAlerts });
  const parts = [
    pipeline.url ? `webhook listening on ${pipeline.url}` : undefined,
    `bus: ${pipeline.busKind === "kafka" ? `kafka ${config.KAFKA_BROKERS?.join(",")}` : "in-memory"}`,
    stages.detect ? `detector on${stages.detectOnly ? ` (${stages.detectOnly} only)` : ""}` : undefined,
    stages.ship || stages.detect ? (config.ELASTICSEARCH_URL ? `shipping to ${config.ELASTICSEARCH_URL}` : undefined) : undefined,
    printAlerts ? `alerts → stdout and ${config.K8S_AUDIT_ALERTS_FILE}` : undefined,
  ].filter(Boolean);
  // The one line a person waits for; on stderr so stdout stays pure alerts when piped.
  process.stderr.write(`k8s-audit: ${parts.join("; ")}\n`);

  let stopping = false;
  const shutdown = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, "shutting down");
    pipeline.stop().then(
      () => process.exit(0),
      (err: unknown) => {
        logger.error({ err }, "shutdown failed");
        process.exit(1);
      },
    );
  };
  process.on("SIGTERM", () => shutdown("SIGTERM"));
  process.on("SIGINT", () => shutdown("SIGINT"));
}

interface RuleFlags {
  dir?: string[];
  sigma?: string[];
  verbose?: boolean;
}

/** The shipped pack, the site folders, and Sigma folders (--sigma, or K8S_AUDIT_SIGMA_DIR). */
function allRules(flags: RuleFlags) {
  const site = flags.dir ?? (process.env.K8S_AUDIT_RULES_DIR ? [process.env.K8S_AUDIT_RULES_DIR] : []);
  const sigma = flags.sigma ?? (process.env.K8S_AUDIT_SIGMA_DIR ? [process.env.K8S_AUDIT_SIGMA_DIR] : []);
  return loadDetection({ rulesDirs: site, sigmaDirs: sigma });
}

function formatTable(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] ?? 0))).join("  ");
  return [line(header), ...rows.map(line)].join("\n");
}

// `k8s-audit rules list | head` closes the pipe early; that is not an error.
process.stdout.on("error", (err: NodeJS.ErrnoException) => {
  if (err.code === "EPIPE") process.exit(0);
  throw err;
});

const program = new Command("k8s-audit")
  .description("Kubernetes audit pipeline: webhook ingest → Kafka → detection → Elasticsearch")
  .showHelpAfterError();

const withRunFlags = (cmd: Command) =>
  cmd
    .option("-l, --listen <host:port>", "webhook listen address (K8S_AUDIT_LISTEN)")
    .option("-c, --cluster <name>", "default cluster name (K8S_AUDIT_CLUSTER)");

withRunFlags(program.command("start"))
  .description("run ingest + detector + shipper in one process (in-memory bus unless KAFKA_BROKERS is set)")
  .action((flags: RunFlags) => runStages({ ingest: true, detect: true, ship: true }, flags, true));

withRunFlags(program.command("ingest"))
  .description("run the audit webhook receiver, publishing to Kafka (needs KAFKA_BROKERS)")
  .action((flags: RunFlags) => runStages({ ingest: true, detect: false, ship: false }, flags, false));

program
  .command("detect")
  .description("run the detector: events topic → rules → alerts topic (needs KAFKA_BROKERS)")
  .option(
    "--only <part>",
    "run one half, to scale or restart it alone: events (per-event rules, partial counts to the windows topic) or windows (timed rules and storms)",
    (v: string) => {
      if (v !== "events" && v !== "windows") throw new Error(`--only takes events or windows, got ${v}`);
      return v;
    },
  )
  .action((flags: { only?: "events" | "windows" }) =>
    runStages({ ingest: false, detect: true, ship: false, ...(flags.only ? { detectOnly: flags.only } : {}) }, {}, false),
  );

program
  .command("ship")
  .description("run the shipper: alerts topic → Elasticsearch (needs KAFKA_BROKERS and ELASTICSEARCH_URL)")
  .action(() => runStages({ ingest: false, detect: false, ship: true }, {}, false));

program
  .command("setup")
  .description("create the Kafka topics and install the Elasticsearch templates (idempotent)")
  .action(async () => {
    const config = loadConfig();
    const logger = createLogger({ level: config.LOG_LEVEL });
    for (const line of await setup(config, logger)) console.log(line);
  });

const rules = program.command("rules").description("the detection rules: shipped pack plus K8S_AUDIT_RULES_DIR");
rules
  .command("test")
  .description("run every rule's inline tests (events that must fire and events that must stay quiet), then the evasion suite")
  .option("--verbose", "list the identity variants skipped as routine for that identity")
  .option("--dir <dir...>", "extra rule folders (default: K8S_AUDIT_RULES_DIR)")
  .option("--sigma <dir...>", "Sigma rule folders (default: K8S_AUDIT_SIGMA_DIR)")
  .action((flags: RuleFlags) => {
    const pack = allRules(flags);
    const results = [...runRuleTests(pack.rules), ...runTimedRuleTests(pack.windowRules)];
    let failed = 0;
    let cases = 0;
    for (const r of results) {
      cases += r.passed + r.failures.length;
      if (r.failures.length === 0) continue;
      failed++;
      for (const f of r.failures) console.log(`FAIL ${r.rule} (${r.source}): ${f}`);
    }
    console.log(`${results.length - failed} passed, ${failed} failed (${results.length} rules, ${cases} test cases)`);
    // The evasion suite: every medium+ rule's firing cases rewritten as an attacker would (see evasion.ts).
    const evasion = runEvasionTests(pack.rules);
    let evasionFailed = 0;
    let variants = 0;
    let routine = 0;
    for (const r of evasion) {
      variants += r.passed + r.failures.length;
      routine += r.routine.length;
      if (r.failures.length) evasionFailed++;
      for (const f of r.failures) console.log(`EVADED ${r.rule} (${r.source}): ${f}`);
      if (flags.verbose) for (const v of r.routine) console.log(`routine ${r.rule}: ${v} (system_routine for that identity)`);
    }
    console.log(
      `evasion: ${evasion.length - evasionFailed} passed, ${evasionFailed} failed (${evasion.length} medium+ rules, ${variants} variants; ${routine} identity variants routine for that identity${flags.verbose ? "" : ", --verbose lists them"})`,
    );
    process.exitCode = failed + evasionFailed > 0 ? 1 : 0;
  });
rules
  .command("list")
  .description("print the rules: id, name, severity, MITRE ATT&CK, source")
  .option("--dir <dir...>", "extra rule folders (default: K8S_AUDIT_RULES_DIR)")
  .option("--sigma <dir...>", "Sigma rule folders (default: K8S_AUDIT_SIGMA_DIR)")
  .action((flags: RuleFlags) => {
    const pack = allRules(flags);
    const rows = [...pack.rules, ...pack.windowRules].map((r) => [
      r.definition.id,
      r.definition.name,
      r.definition.severity,
      [...r.definition.threat.tactics, ...r.definition.threat.techniques.map((t) => t.id)].join(" "),
      r.definition.version === "sigma" ? `sigma:${r.source}` : r.source,
    ]);
    console.log(formatTable(["ID", "NAME", "SEVERITY", "MITRE", "SOURCE"], rows));
    console.log(`${rows.length} rules`);
  });

program
  .command("replay")
  .description("replay archived audit logs (JSON lines, rotated .gz, EventList, EKS/AKS/GKE exports) through detection")
  .argument("<inputs...>", "files, folders or globs")
  .option("--from <time>", "only events at or after this time (ISO 8601, or relative: -2h, -30m, -7d)")
  .option("--to <time>", "only events at or before this time")
  .option("--user <names>", "only these users (or impersonated users), comma-separated")
  .option("--namespace <names>", "only these namespaces")
  .option("--cluster <names>", "only these clusters; events without one are taken as the first")
  .option("--verb <verbs>", "only these verbs")
  .option("--resource <resources>", "only these resources")
  .option("--to-kafka [topic]", "publish the events to a Kafka topic (default k8s-audit.replay) instead of detecting here")
  .option("--to-webhook <url>", "post the events to an audit webhook as an apiserver would, instead of detecting here")
  .option("--token <token>", "bearer token for --to-webhook")
  .option("--case <id>", "store the alerts in case data streams in Elasticsearch (logs-k8s_audit.alert-case_<id>)")
  .option("--include-events", "with --case: store the replayed events too (logs-k8s_audit.events-case_<id>)")
  .option("--out <file>", "write the alerts as NDJSON, one ECS alert per line")
  .option("--no-progress", "no progress bar")
  .option(
    "--reorder-buffer <events>",
    "events held per log to put it in time order (default 100: an apiserver's log is out of order by a few)",
    (v: string) => {
      const n = Number(v);
      if (!Number.isInteger(n) || n < 0) throw new Error(`--reorder-buffer takes a whole number, got ${v}`);
      return n;
    },
  )
  .action(async (inputs: string[], flags: ReplayFlags) => {
    const config = loadConfig();
    process.exitCode = await runReplay(inputs, flags, config, createLogger({ level: config.LOG_LEVEL }));
  });

program
  .command("certs")
  .description("make a CA, an ingest serving certificate and an apiserver client certificate to try mTLS")
  .option("-o, --out <dir>", "output folder", "k8s-audit-certs")
  .option("--host <names...>", "DNS names / IPs the apiserver uses to reach the ingest", ["localhost", "127.0.0.1"])
  .option("--client-name <cn>", "client certificate CN (list it in K8S_AUDIT_TLS_ALLOWED_SUBJECTS)", "kube-apiserver")
  .option("--cluster <name>", "cluster name carried in the client certificate (OU)")
  .action((flags: { out: string; host: string[]; clientName: string; cluster?: string }) => {
    const files = writeKitCertificates(flags.out, { hosts: flags.host, clientName: flags.clientName, cluster: flags.cluster });
    for (const [what, path] of Object.entries(files)) console.log(`${what.padEnd(11)} ${path}`);
  });

program.parseAsync(process.argv).catch((err: unknown) => {
  // Configuration, rule and Sigma errors already name the key, file or rule at fault: their message is the report.
  console.error(`k8s-audit: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
