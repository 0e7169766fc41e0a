import { createHash } from "node:crypto";
import type { Client } from "@elastic/elasticsearch";
import { type AuditEvent, ecsEntities, eventTime, requestOutcome } from "@k8s-audit/core";
import { ECS_ENTITY_MAPPINGS, putDataStreamTemplate } from "./templates.js";

export const EVENTS_DATASET = "k8s_audit.events";

export function eventsDataStream(namespace: string): string {
  return `logs-${EVENTS_DATASET}-${namespace}`;
}

const keyword = { type: "keyword" } as const;
/** Bodies are kept in _source for investigators but never indexed field by field, nor larger than this. */
const MAX_BODY_CHARS = 32 * 1024;

/** Annotation keys with dots replaced by underscores, as Elastic's kubernetes.audit_logs layout does. */
function annotationsForEs(annotations: Record<string, string> | null | undefined): Record<string, string> | undefined {
  if (!annotations) return undefined;
  return Object.fromEntries(Object.entries(annotations).map(([k, v]) => [k.replaceAll(".", "_"), v]));
}

function capBody(body: unknown): unknown {
  if (body === undefined) return undefined;
  const text = JSON.stringify(body);
  return text.length <= MAX_BODY_CHARS ? body : { truncated: true, bytes: text.length };
}

/**
 * A body is mapped as an object; one that is a string (an apply patch sent as YAML, logged as text) would make
 * Elasticsearch refuse the whole document, so it is kept beside it, in _source only, as `<field>Text`.
 */
function bodyFields(name: "requestObject" | "responseObject", body: unknown): Record<string, unknown> {
  if (body === undefined) return {};
  if (body === null || typeof body === "object") return { [name]: capBody(body) };
  const text = typeof body === "string" ? body : JSON.stringify(body);
  return { [`${name}Text`]: text.length <= MAX_BODY_CHARS ? text : `${text.slice(0, MAX_BODY_CHARS)}…` };
}

/**
 * A raw audit event as an ECS document in the field layout Elastic's Kubernetes rules query (`kubernetes.audit.*`
 * camelCase), with @timestamp = event time. Its id is derived from cluster, auditID and stage, so re-sends are 409s.
 */
export function rawEventDocument(event: AuditEvent, ingested: string): { id: string; document: Record<string, unknown> } {
  const cluster = event.cluster ?? "default";
  const { requestObject, responseObject, annotations, cluster: _c, ...rest } = event;
  const id = createHash("sha256").update(`${cluster}\u0000${event.auditID}\u0000${event.stage}`).digest("hex").slice(0, 32);
  return {
    id,
    document: {
      "@timestamp": eventTime(event),
      message: `${event.user.username ?? "unknown"} ${event.verb} ${event.requestURI}`,
      event: {
        kind: "event",
        category: ["api"],
        action: event.verb,
        outcome: requestOutcome(event),
        dataset: EVENTS_DATASET,
        ingested,
      },
      user: { name: event.user.username },
      ...ecsEntities(event),
      kubernetes: {
        audit: {
          ...rest,
          annotations: annotationsForEs(annotations),
          ...bodyFields("requestObject", requestObject),
          ...bodyFields("responseObject", responseObject),
        },
      },
    },
  };
}

const bool = { type: "boolean" } as const;
const securityContext = {
  properties: {
    privileged: bool,
    allowPrivilegeEscalation: bool,
    runAsUser: { type: "long" },
    capabilities: { properties: { add: keyword, drop: keyword } },
  },
};
const containers = { properties: { name: keyword, image: keyword, securityContext } };
const podSpec = {
  hostNetwork: bool,
  hostPID: bool,
  hostIPC: bool,
  serviceAccountName: keyword,
  containers,
  initContainers: containers,
  ephemeralContainers: containers,
  volumes: { properties: { hostPath: { properties: { path: keyword } } } },
};

/**
 * The request body fields Elastic's prebuilt Kubernetes rules (and ours) query, mapped with their real types; the rest of
 * the body stays in _source only. Pods, workload templates, Services, RBAC objects.
 */
const REQUEST_OBJECT_MAPPINGS = {
  kind: keyword,
  type: keyword,
  spec: {
    properties: {
      ...podSpec,
      type: keyword,
      externalIPs: keyword,
      template: { properties: { spec: { properties: podSpec } } },
      jobTemplate: { properties: { spec: { properties: { template: { properties: { spec: { properties: podSpec } } } } } } },
    },
  },
  roleRef: { properties: { kind: keyword, name: keyword } },
  subjects: { properties: { kind: keyword, name: keyword, namespace: keyword } },
  rules: { properties: { apiGroups: keyword, resources: keyword, verbs: keyword } },
};

/**
 * Fields queried by Elastic's prebuilt Kubernetes detection rules (kubernetes.audit_logs layout); the raw event
 * template maps every one of them and the tests check they are present and searchable.
 */
export const ELASTIC_RULE_FIELDS = [
  "event.action",
  "event.outcome",
  "user.name",
  "source.ip",
  "user_agent.original",
  "orchestrator.cluster.name",
  "orchestrator.namespace",
  "orchestrator.resource.type",
  "kubernetes.audit.verb",
  "kubernetes.audit.stage",
  "kubernetes.audit.user.username",
  "kubernetes.audit.user.groups",
  "kubernetes.audit.impersonatedUser.username",
  "kubernetes.audit.userAgent",
  "kubernetes.audit.sourceIPs",
  "kubernetes.audit.objectRef.resource",
  "kubernetes.audit.objectRef.subresource",
  "kubernetes.audit.objectRef.namespace",
  "kubernetes.audit.objectRef.name",
  "kubernetes.audit.objectRef.apiGroup",
  "kubernetes.audit.responseStatus.code",
  "kubernetes.audit.annotations.authorization_k8s_io/decision",
  "kubernetes.audit.requestObject.spec.containers.securityContext.privileged",
  "kubernetes.audit.requestObject.spec.containers.securityContext.capabilities.add",
  "kubernetes.audit.requestObject.spec.containers.securityContext.allowPrivilegeEscalation",
  "kubernetes.audit.requestObject.spec.containers.image",
  "kubernetes.audit.requestObject.spec.hostNetwork",
  "kubernetes.audit.requestObject.spec.hostPID",
  "kubernetes.audit.requestObject.spec.hostIPC",
  "kubernetes.audit.requestObject.spec.volumes.hostPath.path",
  "kubernetes.audit.requestObject.spec.type",
  "kubernetes.audit.requestObject.roleRef.name",
  "kubernetes.audit.requestObject.rules.verbs",
] as const;

/** Template for the raw events data streams: explicit core-type mappings for the fields rules and analysts query. */
export const RAW_EVENT_MAPPINGS = {
  dynamic: false,
  properties: {
    "@timestamp": { type: "date" },
    message: { type: "text" },
    event: {
      properties: {
        kind: keyword,
        category: keyword,
        action: keyword,
        outcome: keyword,
        dataset: keyword,
        ingested: { type: "date" },
      },
    },
    user: { properties: { name: keyword } },
    ...ECS_ENTITY_MAPPINGS,
    kubernetes: {
      properties: {
        audit: {
          properties: {
            auditID: keyword,
            verb: keyword,
            stage: keyword,
            level: keyword,
            requestURI: { type: "keyword", ignore_above: 4096 },
            user: { properties: { username: keyword, groups: keyword } },
            impersonatedUser: { properties: { username: keyword, groups: keyword } },
            sourceIPs: keyword,
            userAgent: { type: "keyword", ignore_above: 1024 },
            objectRef: {
              properties: {
                resource: keyword,
                subresource: keyword,
                namespace: keyword,
                name: keyword,
                apiGroup: keyword,
                apiVersion: keyword,
              },
            },
            responseStatus: { properties: { code: { type: "long" } } },
            requestObject: { properties: REQUEST_OBJECT_MAPPINGS },
            annotations: {
              properties: { "authorization_k8s_io/decision": keyword, "authorization_k8s_io/reason": { type: "text" } },
            },
          },
        },
      },
    },
    data_stream: { properties: { type: keyword, dataset: keyword, namespace: keyword } },
  },
};

/** Makes sure the raw events template exists (see ensureAlertTemplate: setup owns updates). */
export async function ensureRawEventTemplate(es: Client): Promise<void> {
  if (await es.indices.existsIndexTemplate({ name: "k8s-audit-events" })) return;
  await putDataStreamTemplate(es, "k8s-audit-events", `logs-${EVENTS_DATASET}-*`, RAW_EVENT_MAPPINGS);
}
