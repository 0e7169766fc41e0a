/**
 * The archive formats investigators hold, turned into audit events: --audit-log-path JSON lines, EventList and
 * single-event files, and the cloud exports (docs/decisions/0011-audit-log-formats.md): EKS via CloudWatch
 * (`message` holds the event JSON), AKS diagnostic records (`properties.log` holds it), GKE Cloud Logging entries
 * (`protoPayload`, a lossy mapping).
 */
type Json = Record<string, unknown>;
const isObject = (v: unknown): v is Json => v !== null && typeof v === "object" && !Array.isArray(v);

export type SourceFormat = "audit" | "eks" | "aks" | "gke";

export interface Decoded {
  event: unknown;
  format: SourceFormat;
}

/** One parsed JSON value → the audit events it carries (none for envelopes without one). */
export function decodeRecord(value: unknown, out: Decoded[] = []): Decoded[] {
  if (Array.isArray(value)) {
    for (const v of value) decodeRecord(v, out);
    return out;
  }
  if (!isObject(value)) {
    out.push({ event: value, format: "audit" });
    return out;
  }
  if (value.kind === "EventList" && Array.isArray(value.items)) {
    for (const item of value.items) out.push({ event: item, format: "audit" });
    return out;
  }
  if (Array.isArray(value.records)) return decodeRecord(value.records, out);
  if (Array.isArray(value.logEvents)) return decodeRecord(value.logEvents, out);
  const properties = value.properties;
  if (isObject(properties) && typeof properties.log === "string") {
    out.push({ event: JSON.parse(properties.log), format: "aks" });
    return out;
  }
  const message = typeof value.message === "string" ? value.message : typeof value["@message"] === "string" ? value["@message"] : undefined;
  if (message !== undefined && value.auditID === undefined) {
    out.push({ event: JSON.parse(message), format: "eks" });
    return out;
  }
  if (isObject(value.protoPayload)) {
    out.push({ event: fromGkeLogEntry(value), format: "gke" });
    return out;
  }
  out.push({ event: value, format: "audit" });
  return out;
}

/** gRPC status codes (google.rpc.Code) → the HTTP status the apiserver answered. */
const GRPC_TO_HTTP: Record<number, number> = {
  0: 200,
  3: 400,
  5: 404,
  6: 409,
  7: 403,
  9: 412,
  10: 409,
  16: 401,
  8: 429,
  13: 500,
  14: 503,
  4: 504,
};

/**
 * A GKE Cloud Logging entry for a Kubernetes API call. Lossy: GKE keeps no stage (taken as ResponseComplete), no
 * auditID (operation.id or insertId stand in) and no impersonation details; methodName and resourceName give the verb
 * and the object. Marked with the annotation k8s-audit.io/source=gke.
 */
export function fromGkeLogEntry(entry: Json): Json {
  const p = entry.protoPayload as Json;
  const method = String(p.methodName ?? "");
  const verb = method.split(".").pop() || "unknown";
  const resourceName = String(p.resourceName ?? "");
  const { requestURI, objectRef } = gkeResource(resourceName);
  const auth = (p.authenticationInfo ?? {}) as Json;
  const operation = (entry.operation ?? {}) as Json;
  const labels = ((entry.resource as Json | undefined)?.labels ?? {}) as Json;
  return {
    kind: "Event",
    apiVersion: "audit.k8s.io/v1",
    level: p.request || p.response ? "RequestResponse" : "Metadata",
    auditID: String(operation.id ?? entry.insertId ?? `${entry.timestamp}-${resourceName}`),
    stage: "ResponseComplete",
    requestURI,
    verb,
    user: { username: String(auth.principalEmail ?? "unknown") },
    ...gkeCaller((p.requestMetadata ?? {}) as Json),
    objectRef,
    responseStatus: { code: gkeHttpCode((p.status ?? {}) as Json) },
    ...(p.request ? { requestObject: p.request } : {}),
    ...(p.response ? { responseObject: p.response } : {}),
    requestReceivedTimestamp: entry.timestamp,
    stageTimestamp: entry.timestamp,
    annotations: { "k8s-audit.io/source": "gke", ...gkeDecision(p) },
    ...(typeof labels.cluster_name === "string" ? { cluster: labels.cluster_name } : {}),
  };
}

/** `apps/v1/namespaces/ns/deployments/web[/scale]` (`core` for the core group) → the objectRef and the request URI. */
function gkeResource(resourceName: string): { requestURI: string; objectRef: Json } {
  const [group = "", version = "v1", ...rest] = resourceName.split("/").filter(Boolean);
  const apiGroup = group === "core" ? "" : group;
  let namespace: string | undefined;
  let tail = rest;
  if (tail[0] === "namespaces" && tail.length >= 3) {
    namespace = tail[1];
    tail = tail.slice(2);
  }
  const [resource, name, subresource] = tail;
  return {
    requestURI: `/${apiGroup ? `apis/${apiGroup}` : "api"}/${version}/${rest.join("/")}`,
    objectRef: {
      resource,
      ...(namespace ? { namespace } : {}),
      ...(name ? { name } : {}),
      ...(subresource ? { subresource } : {}),
      ...(apiGroup ? { apiGroup } : {}),
      apiVersion: version,
    },
  };
}

/** The caller's address and user agent, where the entry has them. */
function gkeCaller(meta: Json): Json {
  return {
    ...(typeof meta.callerIp === "string" ? { sourceIPs: [meta.callerIp] } : {}),
    ...(typeof meta.callerSuppliedUserAgent === "string" ? { userAgent: meta.callerSuppliedUserAgent } : {}),
  };
}

function gkeHttpCode(status: Json): number {
  return typeof status.code === "number" ? (GRPC_TO_HTTP[status.code] ?? 500) : 200;
}

/** The authorization decision annotation, when the entry records one (its first authorizationInfo). */
function gkeDecision(p: Json): Json {
  const authz = Array.isArray(p.authorizationInfo) ? (p.authorizationInfo[0] as Json | undefined) : undefined;
  return authz ? { "authorization.k8s.io/decision": authz.granted === false ? "forbid" : "allow" } : {};
}
