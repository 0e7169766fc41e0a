import { randomUUID } from "node:crypto";

/** Audit events written by this project for tests: shaped exactly as a v1.31 kube-apiserver sends them. */
export function auditEvent(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  const received = new Date(Date.UTC(2026, 10, 28, 12, 0, 0, 0));
  return {
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
    requestReceivedTimestamp: received.toISOString().replace("Z", "000Z"),
    stageTimestamp: new Date(received.getTime() + 12).toISOString().replace("Z", "000Z"),
    annotations: { "authorization.k8s.io/decision": "allow", "authorization.k8s.io/reason": "" },
    ...overrides,
  };
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

export function eventList(items: unknown[]) {
  return { kind: "EventList", apiVersion: "audit.k8s.io/v1", metadata: {}, items };
}
