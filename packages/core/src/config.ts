import { z } from "zod";
import { DEFAULT_MAX_FUTURE_SKEW_MS } from "./audit-event.js";
import { K8sAuditError } from "./errors.js";

const HostPort = z.string().regex(/^[^\s:]+:\d{1,5}$/, "expected host:port");
const BrokerList = z
  .string()
  .transform((s) =>
    s
      .split(",")
      .map((b) => b.trim())
      .filter(Boolean),
  )
  .pipe(z.array(HostPort).min(1, "expected at least one host:port"));
const Url = z.url({ protocol: /^https?$/, error: "expected an http(s) URL" });
const Bool = z.enum(["true", "false", "1", "0"]).transform((v) => v === "true" || v === "1");
const TopicName = z.string().regex(/^[a-zA-Z0-9._-]{1,249}$/, "expected a Kafka topic name ([a-zA-Z0-9._-])");
const NamespaceName = z.string().regex(/^[a-z0-9_]{1,100}$/, "expected a data stream namespace ([a-z0-9_])");

/**
 * Every setting the stages read, by its environment variable name, so a bad value is reported by the name the
 * operator typed. Defaults are the embedded default: everything on localhost, nothing external.
 */
export const ConfigSchema = z.object({
  K8S_AUDIT_LISTEN: HostPort.default("127.0.0.1:8080").describe(
    "Webhook address `host:port` (flag `--listen` wins); plain HTTP is refused off loopback unless TLS or K8S_AUDIT_ALLOW_PLAIN_HTTP is set.",
  ),
  K8S_AUDIT_METRICS_LISTEN: HostPort.optional().describe(
    "Where `detect` run without the ingest serves /metrics and /healthz; off when unset (with the ingest they are on its address).",
  ),
  K8S_AUDIT_CLUSTER: z
    .string()
    .regex(/^[a-zA-Z0-9._-]{1,128}$/, "expected a cluster name ([a-zA-Z0-9._-])")
    .default("default")
    .describe(
      "Cluster of a request that names none (no `/audit/<cluster>` path, no X-K8s-Audit-Cluster header), and the only cluster a bare token may write (flag `--cluster` wins).",
    ),
  K8S_AUDIT_TOKENS_FILE: z
    .string()
    .optional()
    .describe(
      "Webhook bearer tokens, one per line: `<token> <cluster>[,<cluster>…]` or `<token> *`; re-read when it changes (docs/security.md).",
    ),
  K8S_AUDIT_TLS_CERT: z.string().optional().describe("PEM certificate the ingest serves HTTPS with (needs K8S_AUDIT_TLS_KEY)."),
  K8S_AUDIT_TLS_KEY: z.string().optional().describe("PEM private key of K8S_AUDIT_TLS_CERT."),
  K8S_AUDIT_TLS_CLIENT_CA: z
    .string()
    .optional()
    .describe("CA bundle that client certificates must be signed by (mTLS); needs K8S_AUDIT_TLS_CERT and K8S_AUDIT_TLS_KEY."),
  K8S_AUDIT_TLS_ALLOWED_SUBJECTS: z
    .string()
    .transform((v) =>
      v
        .split(",")
        .map((x) => x.trim())
        .filter(Boolean),
    )
    .optional()
    .describe("Comma-separated client certificate CNs allowed to post (mTLS); any CN the CA signed when unset."),
  K8S_AUDIT_ALLOW_PLAIN_HTTP: Bool.default(false).describe("Allow plain HTTP on a non-loopback address."),
  K8S_AUDIT_ALLOW_UNAUTHENTICATED: Bool.default(false).describe(
    "Allow a webhook without mTLS or bearer tokens on a non-loopback address, which the ingest otherwise refuses to start with (docs/security.md).",
  ),
  K8S_AUDIT_METRICS_TOKEN_FILE: z
    .string()
    .optional()
    .describe("Bearer tokens (one per line) that /metrics and the details of /readyz require; open when unset."),
  K8S_AUDIT_REQUEST_TIMEOUT_SECONDS: z.coerce
    .number()
    .int()
    .min(1)
    .default(60)
    .describe("Time allowed for a whole request, body included; a 64 MiB batch needs about 1 MiB/s to make it."),
  K8S_AUDIT_HEADERS_TIMEOUT_SECONDS: z.coerce
    .number()
    .int()
    .min(1)
    .default(10)
    .describe("Time allowed for the TLS handshake and the request headers."),
  K8S_AUDIT_KEEPALIVE_TIMEOUT_SECONDS: z.coerce
    .number()
    .int()
    .min(1)
    .default(65)
    .describe("Lifetime of an idle keep-alive connection: longer than the apiserver's batch wait, so its connections are reused."),
  K8S_AUDIT_IDLE_TIMEOUT_SECONDS: z.coerce
    .number()
    .int()
    .min(1)
    .default(120)
    .describe("A socket with no traffic at all for this long is closed."),
  K8S_AUDIT_MAX_CONNECTIONS: z.coerce
    .number()
    .int()
    .min(1)
    .default(2048)
    .describe("Open connections the ingest holds in all; further ones are closed at accept."),
  K8S_AUDIT_MAX_CONNECTIONS_PER_CLIENT: z.coerce
    .number()
    .int()
    .min(1)
    .default(256)
    .describe("Open connections from one client address; raise it behind a NAT or a load balancer that hides client addresses."),
  K8S_AUDIT_MIN_BODY_BYTES_PER_SECOND: z.coerce
    .number()
    .int()
    .min(0)
    .default(1024)
    .describe("A request body arriving slower than this (averaged over 10 s) is cut; 0 disables the floor."),
  K8S_AUDIT_MAX_EVENT_DEPTH: z.coerce
    .number()
    .int()
    .min(8)
    .max(1000)
    .default(128)
    .describe("Nesting kept inside one event; deeper values are replaced by a marker and the event is marked truncated."),
  K8S_AUDIT_MAX_INFLIGHT_BYTES: z.coerce
    .number()
    .int()
    .min(1024)
    .default(256 * 1024 * 1024)
    .describe("Request bodies the ingest holds at once (authenticated requests only); beyond it a request gets 429 + Retry-After."),
  K8S_AUDIT_MAX_EVENT_BYTES: z.coerce
    .number()
    .int()
    .min(1024)
    .default(900 * 1024)
    .describe("Largest event stored as it is; a larger one loses bulk (never what rules read) until it fits, and is marked truncated."),
  K8S_AUDIT_SPOOL_DIR: z
    .string()
    .default("k8s-audit-spool")
    .describe("Folder where the ingest keeps, fsynced, the events Kafka did not acknowledge in time, until Kafka takes them."),
  K8S_AUDIT_SPOOL_MAX_BYTES: z.coerce
    .number()
    .int()
    .min(0)
    .default(1024 * 1024 * 1024)
    .describe("Size limit of the spool (with Kafka only); when it is full the ingest answers 503; 0 disables the spool."),
  K8S_AUDIT_DEDUP_WINDOW_SECONDS: z.coerce
    .number()
    .int()
    .min(0)
    .default(600)
    .describe("How long the ingest remembers a stored event to drop an apiserver's re-send of it; 0 disables dedup."),
  K8S_AUDIT_MAX_CLOCK_SKEW_SECONDS: z.coerce
    .number()
    .int()
    .min(0)
    .default(DEFAULT_MAX_FUTURE_SKEW_MS / 1000)
    .describe(
      "How far ahead of the receiving clock an event may be stamped and still drive event time (windows, storms); later ones are judged, kept and marked, never obeyed.",
    ),
  K8S_AUDIT_DEDUP_CAPACITY: z.coerce
    .number()
    .int()
    .min(0)
    .default(200_000)
    .describe("Events the ingest's dedup remembers at most, oldest forgotten first; 0 disables dedup."),
  K8S_AUDIT_REDACT: Bool.default(true).describe(
    "Redact secrets from every event before it leaves the ingest (docs/redaction.md); turn off only when every sink is as trusted as the apiserver's log.",
  ),
  K8S_AUDIT_BODY_LIMIT_BYTES: z.coerce
    .number()
    .int()
    .min(1024)
    .default(64 * 1024 * 1024)
    .describe("Largest request body accepted; a larger declared body gets 413 before it is read."),
  KAFKA_BROKERS: BrokerList.optional().describe(
    "Kafka brokers `host:port,…`; the in-memory bus when unset (required by `ingest`, `detect` and `ship` run apart).",
  ),
  KAFKA_CLIENT_ID: z.string().default("k8s-audit-pipeline").describe("Kafka client id."),
  KAFKA_PARTITIONS: z.coerce.number().int().min(1).default(3).describe("Partitions of the topics the pipeline creates."),
  K8S_AUDIT_TOPIC_EVENTS: TopicName.default("k8s-audit.events").describe("Topic of the audit events, keyed `<cluster>/<auditID>`."),
  K8S_AUDIT_TOPIC_ALERTS: TopicName.default("k8s-audit.alerts").describe("Topic of the alerts, keyed by alert id."),
  K8S_AUDIT_TOPIC_DEADLETTER: TopicName.default("k8s-audit.deadletter").describe(
    "Topic of what a stage could not take (invalid items, refused documents), with the reason.",
  ),
  K8S_AUDIT_TOPIC_WINDOWS: TopicName.optional().describe(
    "Internal topic of the detectors' partial window counts and alerts, partitioned by rule and key (Kafka only); unset means the events topic's name + `.windows`, so two pipelines on one Kafka never share it by accident.",
  ),
  K8S_AUDIT_CONSUMER_GROUP_PREFIX: z
    .string()
    .regex(/^[a-zA-Z0-9._-]{1,200}$/, "expected a consumer group prefix ([a-zA-Z0-9._-])")
    .default("k8s-audit")
    .describe(
      "Consumer groups are `<prefix>-detector`, `-windows`, `-shipper` (and `-shipper-events`): two pipelines on one Kafka need different prefixes, or they split each other's partitions.",
    ),
  K8S_AUDIT_RULES_DIR: z
    .string()
    .optional()
    .describe("A site folder of rules, lists, macros and exceptions loaded after the shipped pack (docs/rules.md)."),
  K8S_AUDIT_SIGMA_DIR: z.string().optional().describe("A folder of Sigma rules the detector loads beside the native pack (docs/rules.md)."),
  ELASTICSEARCH_URL: Url.optional().describe("Elasticsearch the shipper indexes into; alerts are not shipped when unset."),
  ELASTICSEARCH_API_KEY: z.string().optional().describe("API key for ELASTICSEARCH_URL."),
  KIBANA_URL: Url.optional().describe("Kibana that `k8s-audit setup` imports saved objects and the promotion rule into."),
  KIBANA_API_KEY: z.string().optional().describe("API key for KIBANA_URL."),
  K8S_AUDIT_RETENTION_DAYS: z.coerce
    .number()
    .int()
    .min(1)
    .default(30)
    .describe("Days `k8s-audit setup` keeps alerts and events (ILM, or data stream lifecycle where there is no ILM)."),
  K8S_AUDIT_SHIP_EVENTS: Bool.default(false).describe(
    "Ship every raw audit event to Elasticsearch too (`logs-k8s_audit.events-<namespace>`).",
  ),
  K8S_AUDIT_BULK_MAX_BYTES: z.coerce
    .number()
    .int()
    .min(1024)
    .default(5 * 1024 * 1024)
    .describe("Largest Elasticsearch bulk request the shipper sends."),
  K8S_AUDIT_SHIPPER_MAX_ATTEMPTS: z.coerce
    .number()
    .int()
    .min(1)
    .default(30)
    .describe("Attempts of one bulk request (connection loss, 5xx, 429) before the batch is handed back to Kafka for redelivery."),
  K8S_AUDIT_SHIPPER_PARTITIONS_CONCURRENTLY: z.coerce
    .number()
    .int()
    .min(1)
    .default(3)
    .describe("Kafka partitions the shipper processes at once (each in order): more overlaps bulk round trips."),
  K8S_AUDIT_SHIPPER_FETCH_BYTES: z.coerce
    .number()
    .int()
    .min(65536)
    .default(10 * 1024 * 1024)
    .describe("Bytes the shipper fetches per partition per batch: larger batches mean fewer, larger bulk requests."),
  K8S_AUDIT_DETECTOR_PARTITIONS_CONCURRENTLY: z.coerce
    .number()
    .int()
    .min(1)
    .default(3)
    .describe("Events-topic partitions one detector processes at once (each in order)."),
  K8S_AUDIT_DETECTOR_FETCH_BYTES: z.coerce
    .number()
    .int()
    .min(65536)
    .default(4 * 1024 * 1024)
    .describe("Bytes the detector fetches per events partition per batch."),
  K8S_AUDIT_RETRY_AFTER_SECONDS: z.coerce
    .number()
    .int()
    .min(1)
    .default(5)
    .describe("The Retry-After the ingest answers with 429 (overloaded) and 503 (Kafka unreachable and no spool)."),
  K8S_AUDIT_PUBLISH_TIMEOUT_SECONDS: z.coerce
    .number()
    .int()
    .min(1)
    .default(10)
    .describe(
      "Longest wait for Kafka's acknowledgement before a request falls back to the spool or 503 (well under the apiserver's 30 s).",
    ),
  K8S_AUDIT_STORM_WINDOW_SECONDS: z.coerce
    .number()
    .int()
    .min(0)
    .default(60)
    .describe("Window in which repeats of one rule's alert for one principal fold into one summary with a count; 0 turns folding off."),
  K8S_AUDIT_WINDOW_MAX_KEYS: z.coerce
    .number()
    .int()
    .min(100)
    .default(10_000)
    .describe(
      "Exact keys per timed rule and window; later keys are counted in a count-min sketch and promoted when they reach the rule's floor.",
    ),
  K8S_AUDIT_WINDOW_MAX_TRACKED_KEYS: z.coerce
    .number()
    .int()
    .min(100)
    .default(50_000)
    .describe("Keys each timed rule remembers across windows (baselines, sequence progress, silence); the least recently seen go first."),
  K8S_AUDIT_ES_NAMESPACE: NamespaceName.default("default").describe(
    "Data stream namespace: alerts go to `logs-k8s_audit.alert-<namespace>`, events to `logs-k8s_audit.events-<namespace>`.",
  ),
  K8S_AUDIT_ALERTS_FILE: z
    .string()
    .default("k8s-audit-alerts.ndjson")
    .describe("File `k8s-audit start` appends its alerts to, one JSON document per line."),
  LOG_LEVEL: z
    .enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"])
    .default("info")
    .describe("Log level (pino); logs go to stderr and never carry request bodies or tokens."),
});

export type Config = z.infer<typeof ConfigSchema>;

/** Every setting at its default: what a service built without a configuration (tests, benches) falls back to. */
export const DEFAULT_CONFIG: Config = ConfigSchema.parse({});
export type ConfigInput = Partial<Record<keyof Config, string | undefined>>;

export class ConfigError extends K8sAuditError {
  constructor(readonly problems: { key: string; message: string }[]) {
    super(`invalid configuration: ${problems.map((p) => `${p.key}: ${p.message}`).join("; ")}`, { code: "K8S_AUDIT_CONFIG_INVALID" });
  }
}

/** Reads the config from the environment (and explicit overrides, e.g. CLI flags); throws ConfigError naming each bad key. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env, overrides: ConfigInput = {}): Config {
  const input: Record<string, string | undefined> = {};
  for (const key of Object.keys(ConfigSchema.shape)) {
    const value = overrides[key as keyof Config] ?? env[key];
    // An empty variable means "unset", as in most twelve-factor tools.
    if (value !== undefined && value !== "") input[key] = value;
  }
  const parsed = ConfigSchema.safeParse(input);
  if (!parsed.success) {
    throw new ConfigError(
      parsed.error.issues.map((issue) => {
        const key = String(issue.path[0] ?? "(config)");
        // Echo the bad value to help the operator, except for anything that may be a secret.
        const echo = input[key] !== undefined && !/TOKEN|KEY|PASSWORD/.test(key) ? ` (got ${JSON.stringify(input[key])})` : "";
        return { key, message: issue.message + echo };
      }),
    );
  }
  return parsed.data;
}

export function topicsOf(config: Config) {
  return {
    events: config.K8S_AUDIT_TOPIC_EVENTS,
    alerts: config.K8S_AUDIT_TOPIC_ALERTS,
    deadLetter: config.K8S_AUDIT_TOPIC_DEADLETTER,
    windows: config.K8S_AUDIT_TOPIC_WINDOWS ?? `${config.K8S_AUDIT_TOPIC_EVENTS}.windows`,
  };
}

/** The consumer group of each stage that reads Kafka. */
export function consumerGroupsOf(config: Config) {
  const prefix = config.K8S_AUDIT_CONSUMER_GROUP_PREFIX;
  return { detector: `${prefix}-detector`, windows: `${prefix}-windows`, shipper: `${prefix}-shipper` };
}

/** Splits "host:port" into parts for listen(). */
export function parseListen(listen: string): { host: string; port: number } {
  const i = listen.lastIndexOf(":");
  return { host: listen.slice(0, i), port: Number(listen.slice(i + 1)) };
}
