import { type Config, DEFAULT_CONFIG } from "@k8s-audit/core";
import type { TlsFiles } from "./tls.js";

/** What the ingest takes from the configuration (docs/configuration.md has each key's meaning and default). */
export interface IngestSettings {
  /**
   * The cluster of a request that names none, when its credential is bound to any cluster (or there is no
   * authentication); the only cluster a bare token line or a certificate without a cluster may write.
   */
  defaultCluster: string;
  bodyLimitBytes: number;
  /** Request bytes processed at once; beyond it, 429 + Retry-After. */
  maxInflightBytes: number;
  /** Events larger than this lose bulk until they fit, keeping what rules read (truncate.ts). */
  maxEventBytes: number;
  maxEventDepth: number;
  /** Events stamped further ahead of the ingest's clock are kept and marked. */
  maxFutureSkewMs: number;
  redact: boolean;
  requestTimeoutMs: number;
  /** Request headers, and the TLS handshake before them. */
  headersTimeoutMs: number;
  keepAliveTimeoutMs: number;
  idleTimeoutMs: number;
  maxConnections: number;
  maxConnectionsPerClient: number;
  /** A body arriving slower than this, averaged over the body-rate window, is cut (0 disables). */
  minBodyBytesPerSecond: number;
  retryAfterSeconds: number;
  /** Longest wait for Kafka before the request falls back to the spool or 503. */
  publishTimeoutMs: number;
  /**
   * Serve HTTPS from these files (reloaded on change); with clientCa, clients must present a certificate it signed. With
   * clientCa and no tokens the certificate is checked in the TLS handshake: a client without one never gets to HTTP.
   */
  tls?: TlsFiles & { allowedSubjects?: string[] };
  /** Bearer tokens, one per line (`<token> <cluster>[,<cluster>…]`, see tokens.ts); reloaded on change. */
  tokensFile?: string;
}

/** The one mapping from K8S_AUDIT_* keys to the ingest's settings. */
export function ingestSettings(config: Config): IngestSettings {
  const tls = config.K8S_AUDIT_TLS_CERT && config.K8S_AUDIT_TLS_KEY;
  return {
    defaultCluster: config.K8S_AUDIT_CLUSTER,
    bodyLimitBytes: config.K8S_AUDIT_BODY_LIMIT_BYTES,
    maxInflightBytes: config.K8S_AUDIT_MAX_INFLIGHT_BYTES,
    maxEventBytes: config.K8S_AUDIT_MAX_EVENT_BYTES,
    maxEventDepth: config.K8S_AUDIT_MAX_EVENT_DEPTH,
    maxFutureSkewMs: config.K8S_AUDIT_MAX_CLOCK_SKEW_SECONDS * 1000,
    redact: config.K8S_AUDIT_REDACT,
    requestTimeoutMs: config.K8S_AUDIT_REQUEST_TIMEOUT_SECONDS * 1000,
    headersTimeoutMs: config.K8S_AUDIT_HEADERS_TIMEOUT_SECONDS * 1000,
    keepAliveTimeoutMs: config.K8S_AUDIT_KEEPALIVE_TIMEOUT_SECONDS * 1000,
    idleTimeoutMs: config.K8S_AUDIT_IDLE_TIMEOUT_SECONDS * 1000,
    maxConnections: config.K8S_AUDIT_MAX_CONNECTIONS,
    maxConnectionsPerClient: config.K8S_AUDIT_MAX_CONNECTIONS_PER_CLIENT,
    minBodyBytesPerSecond: config.K8S_AUDIT_MIN_BODY_BYTES_PER_SECOND,
    retryAfterSeconds: config.K8S_AUDIT_RETRY_AFTER_SECONDS,
    publishTimeoutMs: config.K8S_AUDIT_PUBLISH_TIMEOUT_SECONDS * 1000,
    ...(config.K8S_AUDIT_TOKENS_FILE ? { tokensFile: config.K8S_AUDIT_TOKENS_FILE } : {}),
    ...(tls
      ? {
          tls: {
            cert: config.K8S_AUDIT_TLS_CERT as string,
            key: config.K8S_AUDIT_TLS_KEY as string,
            clientCa: config.K8S_AUDIT_TLS_CLIENT_CA,
            allowedSubjects: config.K8S_AUDIT_TLS_ALLOWED_SUBJECTS,
          },
        }
      : {}),
  };
}

/** The schema's defaults, for a server or ingestor built without a configuration (tests, benches, embedding). */
export const DEFAULT_INGEST_SETTINGS: IngestSettings = ingestSettings(DEFAULT_CONFIG);

/** The given settings, each one left out (or undefined) taken from the schema's defaults. */
export function withDefaultSettings<T extends Partial<IngestSettings>>(options: T): T & Omit<IngestSettings, "tls" | "tokensFile"> {
  const out: Record<string, unknown> = { ...options };
  for (const [key, value] of Object.entries(DEFAULT_INGEST_SETTINGS)) if (out[key] === undefined) out[key] = value;
  return out as unknown as T & IngestSettings;
}
