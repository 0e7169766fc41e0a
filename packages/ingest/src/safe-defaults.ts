import type { Config } from "@k8s-audit/core";

export const LOOPBACK = /^(127\.\d+\.\d+\.\d+|localhost|\[?::1\]?)$/;

type IngestConfig = Pick<
  Config,
  | "K8S_AUDIT_TLS_CERT"
  | "K8S_AUDIT_TLS_KEY"
  | "K8S_AUDIT_TLS_CLIENT_CA"
  | "K8S_AUDIT_TLS_ALLOWED_SUBJECTS"
  | "K8S_AUDIT_TOKENS_FILE"
  | "K8S_AUDIT_ALLOW_PLAIN_HTTP"
  | "K8S_AUDIT_ALLOW_UNAUTHENTICATED"
>;

/**
 * Whether the ingest may start with this configuration on `host`: an error (refuse to start) or warnings (log them).
 * Audit events carry the whole cluster's activity and the ingest decides which cluster they are filed under, so off
 * loopback it needs TLS and a client authenticator unless an opt-out says otherwise, loudly. See docs/security.md.
 */
export function checkIngestConfig(config: IngestConfig, host: string): { error?: string; warnings: string[] } {
  const warnings: string[] = [];
  const cert = config.K8S_AUDIT_TLS_CERT;
  const key = config.K8S_AUDIT_TLS_KEY;
  if (Boolean(cert) !== Boolean(key))
    return { error: `K8S_AUDIT_TLS_CERT and K8S_AUDIT_TLS_KEY go together: only ${cert ? "the certificate" : "the key"} is set`, warnings };
  const tls = Boolean(cert && key);
  if (config.K8S_AUDIT_TLS_CLIENT_CA && !tls)
    return {
      error:
        "K8S_AUDIT_TLS_CLIENT_CA is set but K8S_AUDIT_TLS_CERT and K8S_AUDIT_TLS_KEY are not: client certificates (mTLS) need the ingest to serve TLS",
      warnings,
    };
  const mtls = Boolean(config.K8S_AUDIT_TLS_CLIENT_CA);
  const authenticated = mtls || Boolean(config.K8S_AUDIT_TOKENS_FILE);
  const loopback = LOOPBACK.test(host);
  if (!loopback && !tls && !config.K8S_AUDIT_ALLOW_PLAIN_HTTP)
    return {
      error: `refusing plain HTTP on ${host}: audit events carry the whole cluster's activity. Set K8S_AUDIT_TLS_CERT and K8S_AUDIT_TLS_KEY, or K8S_AUDIT_ALLOW_PLAIN_HTTP=true`,
      warnings,
    };
  if (!loopback && !authenticated && !config.K8S_AUDIT_ALLOW_UNAUTHENTICATED)
    return {
      error: `refusing to accept unauthenticated audit events on ${host}: anyone who reaches it could write any cluster's events. Set K8S_AUDIT_TLS_CLIENT_CA (mTLS) and/or K8S_AUDIT_TOKENS_FILE, or K8S_AUDIT_ALLOW_UNAUTHENTICATED=true`,
      warnings,
    };
  if (!authenticated && !loopback)
    warnings.push("K8S_AUDIT_ALLOW_UNAUTHENTICATED=true: anyone who reaches the ingest can write events for any cluster");
  if (mtls && !config.K8S_AUDIT_TLS_ALLOWED_SUBJECTS?.length)
    warnings.push(
      "K8S_AUDIT_TLS_ALLOWED_SUBJECTS is not set: every client certificate the CA signed is accepted (if it is the cluster CA, every kubelet too)",
    );
  return { warnings };
}
