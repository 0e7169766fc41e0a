import { randomUUID } from "node:crypto";
import { type AuditEvent, AuditEventSchema } from "@k8s-audit/core";

/** A time as the apiserver writes it: RFC 3339 in UTC with microseconds (`micros`: the three digits after the milliseconds). */
export function apiserverTime(ms: number, micros = 0): string {
  return new Date(ms).toISOString().replace("Z", `${String(micros).padStart(3, "0")}Z`);
}

const RECEIVED = Date.UTC(2026, 10, 28, 12, 0, 0, 0);

/**
 * An audit event written by this project for tests, shaped exactly as a v1.31 kube-apiserver sends one in its webhook's
 * EventList (items carry no kind or apiVersion): alice@example.com listing pods in `default`, allowed, at
 * 2026-11-28T12:00:00Z, under a fresh auditID. `overrides` replace top-level fields whole; a field overridden with
 * `undefined` is left out, so a test says which of these defaults its events do not carry.
 */
export function auditEvent(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  const event: Record<string, unknown> = {
    level: "RequestResponse",
    auditID: randomUUID(),
    stage: "ResponseComplete",
    requestURI: "/api/v1/namespaces/default/pods?limit=500",
    verb: "list",
    user: { username: "alice@example.com", groups: ["developers", "system:authenticated"] },
    sourceIPs: ["198.51.100.7"],
    userAgent: "kubectl/v1.31.2 (linux/amd64) kubernetes/5864a46",
    objectRef: { resource: "pods", namespace: "default", apiVersion: "v1" },
    responseStatus: { metadata: {}, code: 200 },
    requestReceivedTimestamp: apiserverTime(RECEIVED),
    stageTimestamp: apiserverTime(RECEIVED + 12),
    annotations: { "authorization.k8s.io/decision": "allow", "authorization.k8s.io/reason": "" },
    ...overrides,
  };
  return Object.fromEntries(Object.entries(event).filter(([, value]) => value !== undefined));
}

/** An event as the apiserver's log backend writes each line of an audit log file: with kind and apiVersion. */
export function auditLogEvent(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return auditEvent({ kind: "Event", apiVersion: "audit.k8s.io/v1", ...overrides });
}

/** auditEvent through core's AuditEventSchema: typed as the stages see it, and a test that wrote an invalid event stops there. */
export function parsedAuditEvent(overrides: Record<string, unknown> = {}): AuditEvent {
  return AuditEventSchema.parse(auditEvent(overrides));
}

/** `kubectl create clusterrolebinding <name> --clusterrole=cluster-admin --user=<subject>` as its audit event. */
export function clusterAdminBinding(name = "mallory-admin", subject = "mallory", overrides: Record<string, unknown> = {}) {
  const body = {
    kind: "ClusterRoleBinding",
    apiVersion: "rbac.authorization.k8s.io/v1",
    metadata: { name },
    roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: "cluster-admin" },
    subjects: [{ apiGroup: "rbac.authorization.k8s.io", kind: "User", name: subject }],
  };
  return auditEvent({
    verb: "create",
    requestURI: "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings?fieldManager=kubectl-create",
    objectRef: { resource: "clusterrolebindings", name, apiGroup: "rbac.authorization.k8s.io", apiVersion: "v1" },
    requestObject: body,
    responseObject: { ...body, metadata: { name, uid: randomUUID(), resourceVersion: "4711" } },
    responseStatus: { metadata: {}, code: 201 },
    ...overrides,
  });
}

/** What the apiserver's webhook posts: the items wrapped in an audit.k8s.io/v1 EventList. */
export function eventList(items: unknown[]) {
  return { kind: "EventList", apiVersion: "audit.k8s.io/v1", metadata: {}, items };
}
