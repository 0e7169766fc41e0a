import { z } from "zod";
import { DEFAULT_MAX_FUTURE_SKEW_MS } from "./audit-event.js";

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
  K8S_AUDIT_LISTEN: HostPort.default("127.0.0.1:8080"),
  /** Where `detect` (run without the ingest) serves /metrics and /healthz; off when unset. */
  K8S_AUDIT_METRICS_LISTEN: HostPort.optional(),
  K8S_AUDIT_CLUSTER: z
    .string()
    .regex(/^[a-zA-Z0-9._-]{1,128}$/, "expected a cluster name ([a-zA-Z0-9._-])")
    .default("default"),
  K8S_AUDIT_TOKENS_FILE: z.string().optional(),
  K8S_AUDIT_TLS_CERT: z.string().optional(),
  K8S_AUDIT_TLS_KEY: z.string().optional(),
  K8S_AUDIT_TLS_CLIENT_CA: z.string().optional(),
  K8S_AUDIT_TLS_ALLOWED_SUBJECTS: z
    .string()
    .transform((v) =>
      v
        .split(",")
        .map((x) => x.trim())
        .filter(Boolean),
    )
    .optional(),
  K8S_AUDIT_ALLOW_PLAIN_HTTP: Bool.default(false),
  /** Off loopback the ingest refuses to start without mTLS or bearer tokens unless this is set (docs/security.md). */
  K8S_AUDIT_ALLOW_UNAUTHENTICATED: Bool.default(false),
  /** Bearer token(s) that /metrics and /readyz details require (one per line); open when unset. */
  K8S_AUDIT_METRICS_TOKEN_FILE: z.string().optional(),
  /** Whole request, body included; a 64 MiB batch needs ~1 MiB/s to make it. */
  K8S_AUDIT_REQUEST_TIMEOUT_SECONDS: z.coerce.number().int().min(1).default(60),
  /** Request headers (and the TLS handshake) must arrive within this. */
  K8S_AUDIT_HEADERS_TIMEOUT_SECONDS: z.coerce.number().int().min(1).default(10),
  /** Idle keep-alive connection lifetime: longer than the apiserver's batch wait, so its connections are reused. */
  K8S_AUDIT_KEEPALIVE_TIMEOUT_SECONDS: z.coerce.number().int().min(1).default(65),
  /** A socket with no traffic at all for this long is closed. */
  K8S_AUDIT_IDLE_TIMEOUT_SECONDS: z.coerce.number().int().min(1).default(120),
  K8S_AUDIT_MAX_CONNECTIONS: z.coerce.number().int().min(1).default(2048),
  K8S_AUDIT_MAX_CONNECTIONS_PER_CLIENT: z.coerce.number().int().min(1).default(256),
  /** A request body arriving slower than this (averaged over 10 s) is cut; 0 disables. */
  K8S_AUDIT_MIN_BODY_BYTES_PER_SECOND: z.coerce.number().int().min(0).default(1024),
  /** Nesting kept inside one event; deeper values are replaced by a marker and the event is marked truncated. */
  K8S_AUDIT_MAX_EVENT_DEPTH: z.coerce.number().int().min(8).max(1000).default(128),
  K8S_AUDIT_MAX_INFLIGHT_BYTES: z.coerce
    .number()
    .int()
    .min(1024)
    .default(256 * 1024 * 1024),
  K8S_AUDIT_MAX_EVENT_BYTES: z.coerce
    .number()
    .int()
    .min(1024)
    .default(900 * 1024),
  K8S_AUDIT_SPOOL_DIR: z.string().default("k8s-audit-spool"),
  K8S_AUDIT_SPOOL_MAX_BYTES: z.coerce
    .number()
    .int()
    .min(0)
    .default(1024 * 1024 * 1024),
  K8S_AUDIT_DEDUP_WINDOW_SECONDS: z.coerce.number().int().min(0).default(600),
  /**
   * How far ahead of the receiving clock an event may be stamped and still drive event time (windows, storms); later
   * ones are judged, kept and marked, never obeyed.
   */
  K8S_AUDIT_MAX_CLOCK_SKEW_SECONDS: z.coerce
    .number()
    .int()
    .min(0)
    .default(DEFAULT_MAX_FUTURE_SKEW_MS / 1000),
  K8S_AUDIT_DEDUP_CAPACITY: z.coerce.number().int().min(0).default(200_000),
  K8S_AUDIT_REDACT: Bool.default(true),
  K8S_AUDIT_BODY_LIMIT_BYTES: z.coerce
    .number()
    .int()
    .min(1024)
    .default(64 * 1024 * 1024),
  KAFKA_BROKERS: BrokerList.optional(),
  KAFKA_CLIENT_ID: z.string().default("k8s-audit-pipeline"),
  KAFKA_PARTITIONS: z.coerce.number().int().min(1).default(3),
  K8S_AUDIT_TOPIC_EVENTS: TopicName.default("k8s-audit.events"),
  K8S_AUDIT_TOPIC_ALERTS: TopicName.default("k8s-audit.alerts"),
  K8S_AUDIT_TOPIC_DEADLETTER: TopicName.default("k8s-audit.deadletter"),
  /**
   * Internal topic of the detectors' partial window counts and alerts, partitioned by rule and key (Kafka only).
   * Default: the events topic's name + ".windows", so two pipelines on one Kafka never share it by accident.
   */
  K8S_AUDIT_TOPIC_WINDOWS: TopicName.optional(),
  /**
   * Consumer groups are `<prefix>-detector`, `<prefix>-windows`, `<prefix>-shipper` (and `-shipper-events`): two
   * pipelines sharing one Kafka need different prefixes, or they would split each other's partitions.
   */
  K8S_AUDIT_CONSUMER_GROUP_PREFIX: z
    .string()
    .regex(/^[a-zA-Z0-9._-]{1,200}$/, "expected a consumer group prefix ([a-zA-Z0-9._-])")
    .default("k8s-audit"),
  K8S_AUDIT_RULES_DIR: z.string().optional(),
  K8S_AUDIT_SIGMA_DIR: z.string().optional(),
  ELASTICSEARCH_URL: Url.optional(),
  ELASTICSEARCH_API_KEY: z.string().optional(),
  KIBANA_URL: Url.optional(),
  KIBANA_API_KEY: z.string().optional(),
  K8S_AUDIT_RETENTION_DAYS: z.coerce.number().int().min(1).default(30),
  K8S_AUDIT_SHIP_EVENTS: Bool.default(false),
  K8S_AUDIT_BULK_MAX_BYTES: z.coerce
    .number()
    .int()
    .min(1024)
    .default(5 * 1024 * 1024),
  K8S_AUDIT_ES_NAMESPACE: NamespaceName.default("default"),
  K8S_AUDIT_ALERTS_FILE: z.string().default("k8s-audit-alerts.ndjson"),
  LOG_LEVEL: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("info"),
});

export type Config = z.infer<typeof ConfigSchema>;
export type ConfigInput = Partial<Record<keyof Config, string | undefined>>;

export class ConfigError extends Error {
  constructor(readonly problems: { key: string; message: string }[]) {
    super(`invalid configuration: ${problems.map((p) => `${p.key}: ${p.message}`).join("; ")}`);
    this.name = "ConfigError";
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
