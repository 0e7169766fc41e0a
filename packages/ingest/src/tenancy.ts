import type { PeerCertificate } from "node:tls";
import { ANY_CLUSTER } from "./tokens.js";

export const CLUSTER_NAME = /^[a-zA-Z0-9._-]{1,128}$/;
/** A client certificate may name its cluster(s) in a SAN URI too: `k8s-audit://cluster/<name>`. */
const CLUSTER_URI = /^k8s-audit:\/\/cluster\/([^/]+)$/;

/** Who is posting, and which clusters their credential may write (the first is used when the request names none). */
export interface Credential {
  /** How the client proved itself; "none" when the ingest runs without authentication (loopback, or the opt-out). */
  method: "certificate" | "token" | "none";
  /** For messages: the certificate's CN, or "bearer token". */
  who: string;
  clusters: string[] | typeof ANY_CLUSTER;
}

export type ClusterDecision = { ok: true; cluster: string } | { ok: false; status: 400 | 403; reason: string };

/**
 * The clusters a client certificate is bound to: its OU values and `k8s-audit://cluster/<name>` SAN URIs. A
 * certificate naming none writes the default cluster only; one naming an invalid name is refused (undefined + reason).
 */
export function certificateClusters(cert: PeerCertificate, defaultCluster: string): { clusters: string[] } | { reason: string } {
  const ou = cert.subject?.OU;
  const names = [...(Array.isArray(ou) ? ou : ou ? [ou] : []), ...sanClusterUris(cert.subjectaltname)];
  const bad = names.find((n) => !CLUSTER_NAME.test(n));
  if (bad !== undefined)
    return { reason: `client certificate names cluster ${JSON.stringify(bad)}, not a valid cluster name ([a-zA-Z0-9._-], ≤128)` };
  return { clusters: names.length > 0 ? [...new Set(names)] : [defaultCluster] };
}

/** Node renders SANs as `URI:a, DNS:b` (values with separators quoted as JSON strings). */
function sanClusterUris(san: string | undefined): string[] {
  if (!san) return [];
  const out: string[] = [];
  for (const part of san.split(/, (?=[A-Za-z ]+:)/)) {
    if (!part.startsWith("URI:")) continue;
    let uri = part.slice(4);
    if (uri.startsWith('"')) {
      try {
        uri = JSON.parse(uri) as string;
      } catch {
        continue;
      }
    }
    const m = CLUSTER_URI.exec(uri);
    if (m?.[1]) out.push(decodeURIComponent(m[1]));
  }
  return out;
}

/**
 * The cluster a request writes. The path (/audit/<cluster>) or the X-K8s-Audit-Cluster header may name one; it must be
 * one the credential is bound to (403 otherwise). Naming none means the credential's home cluster (its first), or the
 * default cluster for a credential bound to any.
 */
export function decideCluster(
  credential: Credential,
  named: { path?: string; header?: string | string[] },
  defaultCluster: string,
): ClusterDecision {
  if (Array.isArray(named.header)) return { ok: false, status: 400, reason: "several X-K8s-Audit-Cluster headers" };
  if (named.path !== undefined && named.header !== undefined && named.path !== named.header)
    return {
      ok: false,
      status: 400,
      reason: `the path names cluster ${JSON.stringify(named.path)} and the X-K8s-Audit-Cluster header ${JSON.stringify(named.header)}`,
    };
  const requested = named.path ?? named.header;
  if (requested !== undefined && !CLUSTER_NAME.test(requested))
    return { ok: false, status: 400, reason: `invalid cluster name ${JSON.stringify(requested)} (allowed: [a-zA-Z0-9._-], ≤128)` };
  const { clusters } = credential;
  if (requested === undefined) return { ok: true, cluster: clusters === ANY_CLUSTER ? defaultCluster : (clusters[0] ?? defaultCluster) };
  if (clusters === ANY_CLUSTER || clusters.includes(requested)) return { ok: true, cluster: requested };
  return {
    ok: false,
    status: 403,
    reason: `${credential.who} may write cluster ${clusters.map((c) => JSON.stringify(c)).join(", ")}, not ${JSON.stringify(requested)}`,
  };
}

/** A token's clusters: a bare (legacy) token line writes the default cluster only; `*` writes any. */
export function tokenClusters(clusters: string[] | undefined, defaultCluster: string): string[] | typeof ANY_CLUSTER {
  if (!clusters) return [defaultCluster];
  return clusters.includes(ANY_CLUSTER) ? ANY_CLUSTER : clusters;
}
