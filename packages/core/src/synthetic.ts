import { randomUUID } from "node:crypto";

const VERBS = ["get", "list", "watch", "update", "patch", "create", "delete"] as const;
const RESOURCES = [
  { resource: "pods", group: "", version: "v1" },
  { resource: "configmaps", group: "", version: "v1" },
  { resource: "leases", group: "coordination.k8s.io", version: "v1" },
  { resource: "deployments", group: "apps", version: "v1" },
  { resource: "endpointslices", group: "discovery.k8s.io", version: "v1" },
] as const;
const USERS = [
  {
    username: "system:serviceaccount:kube-system:replicaset-controller",
    groups: ["system:serviceaccounts", "system:serviceaccounts:kube-system", "system:authenticated"],
  },
  { username: "system:node:ip-10-0-12-34.eu-west-1.compute.internal", groups: ["system:nodes", "system:authenticated"] },
  { username: "alice@example.com", groups: ["platform-admins", "system:authenticated"] },
];

/**
 * Realistic Metadata-level events of about 1.2 KB, shaped like a busy cluster's (controllers, kubelets, people), for
 * benchmarks and load tests. Every auditID is fresh; event i is stamped i milliseconds after a fixed start. One event in
 * 500 is something the rule pack flags (a cluster-wide secret list by curl, an exec into kube-system).
 */
export function syntheticAuditEvent(i: number): Record<string, unknown> & { auditID: string } {
  const base = routineEvent(i);
  if (i % 1000 === 250) {
    return {
      ...base,
      verb: "list",
      requestURI: "/api/v1/secrets",
      userAgent: "curl/8.5.0",
      objectRef: { resource: "secrets", apiVersion: "v1" },
    };
  }
  if (i % 1000 === 750) {
    return {
      ...base,
      verb: "create",
      stage: "ResponseStarted",
      requestURI: "/api/v1/namespaces/kube-system/pods/coredns-1/exec?command=sh",
      objectRef: { resource: "pods", subresource: "exec", namespace: "kube-system", name: "coredns-1", apiVersion: "v1" },
      user: { username: "alice@example.com", groups: ["system:authenticated"] },
      responseStatus: { code: 101 },
    };
  }
  return base;
}

function routineEvent(i: number): Record<string, unknown> & { auditID: string } {
  const r = RESOURCES[i % RESOURCES.length] as (typeof RESOURCES)[number];
  const verb = VERBS[i % VERBS.length] as string;
  const user = USERS[i % USERS.length] as (typeof USERS)[number];
  const ns = `team-${i % 40}`;
  const name = `${r.resource.slice(0, -1)}-${(i * 7919) % 100000}`;
  const base = r.group ? `/apis/${r.group}/${r.version}` : `/api/${r.version}`;
  const t = new Date(Date.UTC(2026, 10, 28, 12, 0, 0) + i);
  return {
    kind: "Event",
    apiVersion: "audit.k8s.io/v1",
    level: "Metadata",
    auditID: randomUUID(),
    stage: "ResponseComplete",
    requestURI: `${base}/namespaces/${ns}/${r.resource}/${verb === "list" || verb === "watch" ? `?resourceVersion=${i}&timeout=7m2s&watch=${verb === "watch"}` : name}`,
    verb,
    user: { ...user, extra: { "authentication.kubernetes.io/credential-id": [`JTI=${randomUUID()}`] } },
    sourceIPs: [`10.0.${i % 250}.${(i >> 8) % 250}`],
    userAgent: "kube-controller-manager/v1.31.2 (linux/amd64) kubernetes/5864a46/system:serviceaccount:kube-system:replicaset-controller",
    objectRef: { resource: r.resource, namespace: ns, name, apiGroup: r.group || undefined, apiVersion: r.version },
    responseStatus: { metadata: {}, code: verb === "create" ? 201 : 200 },
    requestReceivedTimestamp: t.toISOString().replace("Z", "123Z"),
    stageTimestamp: new Date(t.getTime() + 3).toISOString().replace("Z", "456Z"),
    annotations: {
      "authorization.k8s.io/decision": "allow",
      "authorization.k8s.io/reason": `RBAC: allowed by ClusterRoleBinding "system:controller:replicaset-controller" of ClusterRole "system:controller:replicaset-controller" to ServiceAccount "replicaset-controller/kube-system"`,
    },
  };
}
