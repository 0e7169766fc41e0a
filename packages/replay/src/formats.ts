import { gunzipSync } from "node:zlib";

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
  /** Set when the record is not a Kubernetes API call at all (a GKE project's billing or compute entry): the reason. */
  skipped?: string;
  /** Set when one record of a batch cannot be read (its envelope named): the rest of the batch still is. */
  malformed?: string;
}

/** The AKS diagnostic categories that hold audit events; an Event Hub batch mixes them with control-plane logs. */
const AKS_AUDIT_CATEGORIES = new Set(["kube-audit", "kube-audit-admin"]);

/** One parsed JSON value → the audit events it carries (none for envelopes without one). */
export function decodeRecord(value: unknown, out: Decoded[] = []): Decoded[] {
  if (Array.isArray(value)) decodeBatch(value, out);
  else if (!isObject(value)) out.push({ event: value, format: "audit" });
  else if (value.kind === "EventList" && Array.isArray(value.items))
    for (const item of value.items) out.push({ event: item, format: "audit" });
  else if (Array.isArray(value.records)) decodeBatch(value.records, out);
  else if (Array.isArray(value.logEvents)) decodeBatch(value.logEvents, out, eksCluster(value.logGroup));
  // `aws logs filter-log-events` / `get-log-events` output.
  else if (Array.isArray(value.events) && value.kind === undefined) decodeBatch(value.events, out);
  // `aws logs get-query-results` (Logs Insights): rows of {field, value}.
  else if (Array.isArray(value.results) && value.results.every(Array.isArray)) decodeBatch(value.results.map(insightsRow), out);
  else if (isObject(value.awslogs) && typeof value.awslogs.data === "string") decodeSubscription(value.awslogs.data, out);
  else decodeEnvelope(value, out);
  return out;
}

/** `/aws/eks/<cluster>/cluster`, the log group EKS writes its control-plane logs to → the cluster's name. */
function eksCluster(logGroup: unknown): string | undefined {
  return typeof logGroup === "string" ? /^\/aws\/eks\/([^/]+)\/cluster$/.exec(logGroup)?.[1] : undefined;
}

/** A Logs Insights result row (`[{field: "@message", value: "…"}, …]`) as the object it stands for. */
function insightsRow(row: unknown[]): Json {
  const out: Json = {};
  for (const cell of row) if (isObject(cell) && typeof cell.field === "string") out[cell.field] = cell.value;
  return out;
}

/**
 * A CloudWatch Logs subscription payload as a Lambda receives it (`{"awslogs":{"data":<base64 gzip>}}`): its log
 * events, with the cluster from its log group. A CONTROL_MESSAGE (CloudWatch checking the destination) carries none.
 */
function decodeSubscription(data: string, out: Decoded[]): void {
  const payload: unknown = JSON.parse(gunzipSync(Buffer.from(data, "base64")).toString("utf8"));
  if (!isObject(payload)) throw new Error("CloudWatch subscription payload is not a JSON object");
  if (payload.messageType === "CONTROL_MESSAGE") {
    out.push({ event: undefined, format: "eks", skipped: "CloudWatch subscription control message" });
    return;
  }
  decodeBatch(Array.isArray(payload.logEvents) ? payload.logEvents : [], out, eksCluster(payload.logGroup));
}

/**
 * One bad record costs one record: the others of its batch are still read. `cluster`, when the envelope names it (an
 * EKS log group), is given to the events that do not name their own.
 */
function decodeBatch(records: unknown[], out: Decoded[], cluster?: string): void {
  for (const [index, record] of records.entries()) {
    try {
      const from = out.length;
      decodeRecord(record, out);
      if (cluster) for (let i = from; i < out.length; i++) withCluster(out[i]?.event, cluster);
    } catch (err) {
      out.push({
        event: undefined,
        format: "audit",
        malformed: `record ${index} of the batch: ${err instanceof Error ? err.message : String(err)}`,
      });
    }
  }
}

/**
 * A single record: an AKS diagnostic record, an EKS CloudWatch event, a GKE LogEntry, or an audit event itself. A
 * shipper's wrapper (Filebeat, Elastic Agent, Logstash: the original record in `message`) is unwrapped, so a GKE
 * entry or an AKS record inside one is read as such, not taken for EKS.
 */
function decodeEnvelope(value: Json, out: Decoded[]): void {
  const properties = value.properties;
  if (isObject(properties) && (typeof properties.log === "string" || isObject(properties.log))) {
    out.push(decodeAks(value, properties.log));
    return;
  }
  const message = value.message ?? value["@message"];
  if (value.auditID === undefined && (typeof message === "string" || isObject(message))) {
    const inner = typeof message === "string" ? parseEksMessage(message) : message;
    if (isObject(inner) && inner.auditID === undefined) decodeRecord(inner, out);
    else out.push({ event: inner, format: "eks" });
    return;
  }
  if (isObject(value.protoPayload)) {
    const notKubernetes = notAKubernetesEntry(value);
    out.push(
      notKubernetes ? { event: undefined, format: "gke", skipped: notKubernetes } : { event: fromGkeLogEntry(value), format: "gke" },
    );
    return;
  }
  out.push({ event: value, format: "audit" });
}

function withCluster(event: unknown, cluster: string): void {
  if (isObject(event) && event.cluster === undefined) event.cluster = cluster;
}

/** An EKS log event's `message`; CloudWatch cuts events at 256 KB, which leaves JSON that does not parse: said so. */
function parseEksMessage(message: string): unknown {
  try {
    return JSON.parse(message);
  } catch {
    throw new Error(
      `EKS CloudWatch message is not JSON${message.length >= 255_000 ? ` (${message.length} characters: cut by CloudWatch's 256 KB limit?)` : ""}`,
    );
  }
}

/** An AKS diagnostic record: audit categories decoded (`log` as a string or an object), the others skipped. */
function decodeAks(record: Json, log: unknown): Decoded {
  const category = record.category;
  if (typeof category === "string" && !AKS_AUDIT_CATEGORIES.has(category))
    return { event: undefined, format: "aks", skipped: `AKS diagnostic record of category ${category}, not an audit record` };
  return { event: typeof log === "string" ? parseAksLog(log) : log, format: "aks" };
}

/** An AKS record's `properties.log`; Azure cuts it at 16 KiB, which leaves JSON that does not parse: said so. */
function parseAksLog(log: string): unknown {
  try {
    return JSON.parse(log);
  } catch {
    throw new Error(
      `AKS properties.log is not JSON${log.length >= 16_000 ? ` (${log.length} characters: cut by Azure's 16 KiB limit?)` : ""}`,
    );
  }
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
 * Why a Cloud Audit Logs entry is not a Kubernetes API call (a project's export also holds billing, compute and
 * cluster-management entries such as `DeleteCluster`), or undefined when it is one: the Kubernetes API's entries are
 * those of service `k8s.io` on a `k8s_cluster` resource.
 */
function notAKubernetesEntry(entry: Json): string | undefined {
  const p = entry.protoPayload as Json;
  const service = p.serviceName;
  const resourceType = (entry.resource as Json | undefined)?.type;
  if (service === "k8s.io" || (service === undefined && resourceType === "k8s_cluster")) return undefined;
  return `GKE entry of ${typeof service === "string" ? service : "an unknown service"} (${String(p.methodName ?? "no method")}), not a Kubernetes API call`;
}

/**
 * A GKE Cloud Logging entry for a Kubernetes API call. Lossy: GKE keeps no stage (taken as ResponseComplete), no
 * auditID (operation.id or insertId stand in) and no impersonation details; methodName and resourceName give the verb
 * and the object. Marked with the annotation k8s-audit.io/source=gke.
 */
export function fromGkeLogEntry(entry: Json): Json {
  const p = entry.protoPayload as Json;
  const method = String(p.methodName ?? "");
  const verb = method.split(".").pop() || "unknown";
  const status = gkeHttpCode((p.status ?? {}) as Json, p.response, verb);
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
    ...(objectRef ? { objectRef } : {}),
    responseStatus: { code: status },
    ...(p.request ? { requestObject: p.request } : {}),
    ...(p.response ? { responseObject: p.response } : {}),
    // GKE keeps one time per call (when it happened) and when Logging received it; neither is a stage's time, so the
    // call's time stands for both of the event's and the receipt is kept beside them.
    requestReceivedTimestamp: entry.timestamp,
    stageTimestamp: entry.timestamp,
    annotations: {
      ...stringLabels(entry.labels),
      "k8s-audit.io/source": "gke",
      ...(typeof entry.receiveTimestamp === "string" ? { "k8s-audit.io/gke-receive-timestamp": entry.receiveTimestamp } : {}),
      ...gkeDecision(p),
    },
    ...(typeof labels.cluster_name === "string" ? { cluster: labels.cluster_name } : {}),
  };
}

/** An API version segment (`v1`, `v1beta1`, `v2alpha1`): what tells a resource path from a non-resource URL. */
const API_VERSION = /^v\d+((alpha|beta)\d+)?$/;
/** Subresources of a namespace itself (`namespaces/<name>/status`), not resources inside it. */
const NAMESPACE_SUBRESOURCES = new Set(["status", "finalize"]);

/**
 * `apps/v1/namespaces/ns/deployments/web[/scale[/…]]` (`core` for the core group) → the objectRef and the request URI.
 * A name without a version segment is a non-resource URL (`readyz`, `livez`, `version`, `api/v1` discovery): it has
 * no objectRef, as the apiserver logs it.
 */
function gkeResource(resourceName: string): { requestURI: string; objectRef?: Json } {
  const parts = resourceName.split("/").filter(Boolean);
  const [group = "", version = "", ...rest] = parts;
  if (!API_VERSION.test(version) || rest.length === 0) return { requestURI: `/${parts.join("/")}` };
  const apiGroup = group === "core" ? "" : group;
  let namespace: string | undefined;
  let tail = rest;
  const namespaceSubresource = tail.length === 3 && tail[0] === "namespaces" && NAMESPACE_SUBRESOURCES.has(tail[2] as string);
  if (tail[0] === "namespaces" && tail.length >= 3 && !namespaceSubresource) {
    namespace = tail[1];
    tail = tail.slice(2);
  }
  // Anything past the subresource (a proxy's path) belongs to the URI, not the objectRef.
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

/**
 * The HTTP status: from a gRPC status code when the entry has one, else from a Status object in the response (the
 * apiserver's own answer), else 201 for a create and 200 for the rest (GKE writes no code on success).
 */
function gkeHttpCode(status: Json, response: unknown, verb: string): number {
  if (typeof status.code === "number" && status.code !== 0) return GRPC_TO_HTTP[status.code] ?? 500;
  if (isObject(response) && response.kind === "Status" && typeof response.code === "number") return response.code;
  return verb === "create" ? 201 : 200;
}

/** The entry's labels (admission and authorization annotations such as `authorization.k8s.io/reason`), as annotations. */
function stringLabels(labels: unknown): Record<string, string> {
  if (!isObject(labels)) return {};
  return Object.fromEntries(Object.entries(labels).filter((e): e is [string, string] => typeof e[1] === "string"));
}

/** The authorization decision annotation, when the entry records one (its first authorizationInfo). */
function gkeDecision(p: Json): Json {
  const authz = Array.isArray(p.authorizationInfo) ? (p.authorizationInfo[0] as Json | undefined) : undefined;
  return authz ? { "authorization.k8s.io/decision": authz.granted === false ? "forbid" : "allow" } : {};
}
