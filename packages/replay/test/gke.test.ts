import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Alert, type AuditEvent, SEVERITY_SCORES } from "@k8s-audit/core";
import { Detector } from "@k8s-audit/detector";
import { loadRules } from "@k8s-audit/rules";
import { describe, expect, it } from "vitest";
import { decodeRecord, replay } from "../src/index.js";

/**
 * A GKE project's Cloud Audit Logs export as `gcloud logging read --format=json` or a sink writes it: Kubernetes API
 * entries of two clusters beside billing, compute and cluster-management entries. Shapes follow Cloud Logging's
 * LogEntry and AuditLog; every value is invented for this test.
 */
function entry(o: {
  id: string;
  method: string;
  resourceName: string;
  principal?: string;
  cluster?: string;
  service?: string;
  resourceType?: string;
  status?: Record<string, unknown>;
  response?: Record<string, unknown>;
  labels?: Record<string, string>;
  agent?: string;
  granted?: boolean;
}) {
  return {
    insertId: `insert-${o.id}`,
    logName: "projects/acme-prod/logs/cloudaudit.googleapis.com%2Factivity",
    operation: { id: o.id, producer: o.service ?? "k8s.io" },
    protoPayload: {
      "@type": "type.googleapis.com/google.cloud.audit.AuditLog",
      serviceName: o.service ?? "k8s.io",
      authenticationInfo: { principalEmail: o.principal ?? "alice@example.com" },
      authorizationInfo: [{ granted: o.granted ?? true, permission: o.method }],
      methodName: o.method,
      resourceName: o.resourceName,
      requestMetadata: { callerIp: "203.0.113.7", callerSuppliedUserAgent: o.agent ?? "kubectl/v1.33.1 (linux/amd64)" },
      status: o.status ?? {},
      ...(o.response ? { response: o.response } : {}),
    },
    resource: {
      type: o.resourceType ?? "k8s_cluster",
      labels: { project_id: "acme-prod", location: "europe-west1", ...(o.cluster ? { cluster_name: o.cluster } : {}) },
    },
    ...(o.labels ? { labels: o.labels } : {}),
    timestamp: "2026-11-30T10:00:00.123456Z",
    receiveTimestamp: "2026-11-30T10:00:01.456789012Z",
  };
}

const EXPORT = [
  entry({
    id: "bill-1",
    method: "google.cloud.billing.v1.CloudBilling.UpdateBillingInfo",
    resourceName: "projects/acme-prod",
    service: "cloudbilling.googleapis.com",
    resourceType: "project",
  }),
  entry({
    id: "gce-1",
    method: "v1.compute.instances.insert",
    resourceName: "projects/acme-prod/zones/europe-west1-b/instances/vm-1",
    service: "compute.googleapis.com",
    resourceType: "gce_instance",
  }),
  entry({
    id: "gke-admin-1",
    method: "google.container.v1.ClusterManager.DeleteCluster",
    resourceName: "projects/acme-prod/locations/europe-west1/clusters/c1",
    service: "container.googleapis.com",
    resourceType: "gke_cluster",
    cluster: "c1",
  }),
  entry({
    id: "k-create",
    method: "io.k8s.authorization.rbac.v1.clusterrolebindings.create",
    resourceName: "rbac.authorization.k8s.io/v1/clusterrolebindings/pwned",
    cluster: "c1",
    labels: { "authorization.k8s.io/reason": 'RBAC: allowed by ClusterRoleBinding "admins"' },
  }),
  entry({
    id: "k-probe",
    method: "io.k8s.get",
    resourceName: "readyz",
    principal: "system:anonymous",
    cluster: "c1",
    agent: "kube-probe/1.33",
  }),
  entry({
    id: "k-ns-status",
    method: "io.k8s.core.v1.namespaces.status.update",
    resourceName: "core/v1/namespaces/team-a/status",
    cluster: "c1",
  }),
  entry({
    id: "k-exec",
    method: "io.k8s.core.v1.pods.exec.create",
    resourceName: "core/v1/namespaces/team-a/pods/web-0/exec",
    cluster: "c1",
  }),
  entry({
    id: "k-denied",
    method: "io.k8s.core.v1.secrets.list",
    resourceName: "core/v1/namespaces/kube-system/secrets",
    cluster: "c1",
    status: { code: 7, message: "forbidden" },
    granted: false,
  }),
  entry({
    id: "k-conflict",
    method: "io.k8s.apps.v1.deployments.update",
    resourceName: "apps/v1/namespaces/team-a/deployments/web",
    cluster: "c1",
    response: { kind: "Status", code: 409, reason: "Conflict" },
  }),
  entry({
    id: "k-other",
    method: "io.k8s.core.v1.configmaps.get",
    resourceName: "core/v1/namespaces/team-b/configmaps/settings",
    cluster: "c2",
  }),
];

const decodedEvent = (value: unknown) => decodeRecord(value)[0];

describe("GKE Cloud Logging exports", () => {
  it("skips, with the reason, entries that are not Kubernetes API calls (billing, compute, cluster management)", () => {
    for (const e of EXPORT.slice(0, 3)) {
      const d = decodedEvent(e);
      expect(d?.event).toBeUndefined();
      expect(d?.skipped).toMatch(/not a Kubernetes API call/);
    }
  });

  it("maps resource paths, namespace subresources, non-resource URLs, status codes, labels and times", () => {
    const byId = new Map(EXPORT.slice(3).map((e) => [e.operation.id, decodedEvent(e)?.event as AuditEvent]));
    expect(byId.get("k-create")).toMatchObject({
      verb: "create",
      cluster: "c1",
      objectRef: { resource: "clusterrolebindings", name: "pwned", apiGroup: "rbac.authorization.k8s.io" },
      responseStatus: { code: 201 },
      annotations: { "authorization.k8s.io/reason": 'RBAC: allowed by ClusterRoleBinding "admins"', "k8s-audit.io/source": "gke" },
    });
    const probe = byId.get("k-probe");
    expect(probe?.requestURI).toBe("/readyz");
    expect(probe?.objectRef).toBeUndefined();
    expect(byId.get("k-ns-status")?.objectRef).toMatchObject({ resource: "namespaces", name: "team-a", subresource: "status" });
    expect(byId.get("k-ns-status")?.objectRef?.namespace).toBeUndefined();
    expect(byId.get("k-exec")?.objectRef).toMatchObject({ resource: "pods", namespace: "team-a", name: "web-0", subresource: "exec" });
    expect(byId.get("k-denied")?.responseStatus?.code).toBe(403);
    expect(byId.get("k-denied")?.annotations?.["authorization.k8s.io/decision"]).toBe("forbid");
    expect(byId.get("k-conflict")?.responseStatus?.code).toBe(409);
    expect(byId.get("k-create")?.stageTimestamp).toBe("2026-11-30T10:00:00.123456Z");
    expect(byId.get("k-create")?.annotations?.["k8s-audit.io/gke-receive-timestamp"]).toBe("2026-11-30T10:00:01.456789012Z");
  });

  it("with --cluster keeps that cluster's Kubernetes entries only, counts the rest as skipped, and a kube-probe raises nothing medium+", async () => {
    const dir = mkdtempSync(join(tmpdir(), "gke-export-"));
    writeFileSync(join(dir, "export.jsonl"), `${EXPORT.map((e) => JSON.stringify(e)).join("\n")}\n`);
    const seen: AuditEvent[] = [];
    const alerts: Alert[] = [];
    const summary = await replay({
      inputs: [dir],
      filters: { cluster: "c1" },
      defaultCluster: "c1",
      detector: new Detector(loadRules()),
      onEvent: (e) => void seen.push(e),
      onAlerts: (a) => void alerts.push(...a),
    });
    expect(seen.map((e) => e.auditID).sort()).toEqual(["k-conflict", "k-create", "k-denied", "k-exec", "k-ns-status", "k-probe"]);
    expect(summary.skipped).toBe(3);
    expect(summary.malformed).toBe(0);
    const loud = alerts.filter((a) => a.event.severity >= SEVERITY_SCORES.medium && a.kubernetes.audit.auditID.includes("k-probe"));
    expect(loud.map((a) => a.rule.id)).toEqual([]);
    // The real findings in the same export still fire, each on its own entry.
    expect(alerts.map((a) => `${a.rule.id} ${a.kubernetes.audit.auditID.join(",")}`).sort()).toEqual([
      "rbac.binding_created k-create",
      "secret.read_in_kube_system.attempt k-denied",
      "workload.exec_into_pod k-exec",
    ]);
  });
});

describe("AKS Event Hub batches", () => {
  const audit = (id: string) =>
    JSON.stringify({
      kind: "Event",
      apiVersion: "audit.k8s.io/v1",
      level: "Metadata",
      auditID: id,
      stage: "ResponseComplete",
      requestURI: "/api/v1/namespaces/default/pods",
      verb: "list",
      user: { username: "alice" },
      objectRef: { resource: "pods", namespace: "default", apiVersion: "v1" },
      responseStatus: { code: 200 },
      requestReceivedTimestamp: "2026-11-30T10:00:00.000001Z",
      stageTimestamp: "2026-11-30T10:00:00.000002Z",
    });
  const record = (category: string, log: unknown) => ({
    category,
    operationName: "Microsoft.ContainerService/managedClusters/diagnosticLogs/Read",
    properties: { log, pod: "kube-apiserver-1" },
    resourceId: "/SUBSCRIPTIONS/X/RESOURCEGROUPS/RG/PROVIDERS/MICROSOFT.CONTAINERSERVICE/MANAGEDCLUSTERS/AKS-PROD",
    time: "2026-11-30T10:00:01Z",
  });

  it("reads every audit record of a batch that mixes categories and holds one cut record, naming the bad one", async () => {
    const batch = {
      records: [
        record("kube-audit", audit("aks-a")),
        record("kube-controller-manager", 'I1130 10:00:00.000000 1 controller.go:42] "Reconciling" node="aks-node-1"'),
        record("kube-audit", audit("aks-b").slice(0, 120)),
        record("kube-audit-admin", JSON.parse(audit("aks-c"))),
      ],
    };
    const dir = mkdtempSync(join(tmpdir(), "aks-batch-"));
    writeFileSync(join(dir, "eventhub.json"), `${JSON.stringify(batch)}\n`);
    const seen: string[] = [];
    const summary = await replay({ inputs: [dir], onEvent: (e) => void seen.push(e.auditID) });
    expect(seen.sort()).toEqual(["aks-a", "aks-c"]);
    expect(summary.skipped).toBe(1);
    expect(summary.malformed).toBe(1);
    expect(summary.malformedSamples[0]?.reason).toMatch(/^record 2 of the batch: AKS properties.log is not JSON/);
  });
});

describe("records wrapped by a log shipper", () => {
  it("unwraps a GKE entry or an AKS record held in `message` (Filebeat, Elastic Agent, Logstash) instead of taking it for EKS", () => {
    const gke = EXPORT[3];
    const aks = { category: "kube-audit", properties: { log: JSON.stringify({ auditID: "wrapped-aks" }) } };
    const [fromGke] = decodeRecord({ "@timestamp": "2026-11-30T10:00:02Z", message: JSON.stringify(gke), agent: { type: "filebeat" } });
    expect(fromGke).toMatchObject({ format: "gke", event: { auditID: "k-create", cluster: "c1" } });
    const [fromAks] = decodeRecord({ message: JSON.stringify(aks), host: { name: "logstash-1" } });
    expect(fromAks).toMatchObject({ format: "aks", event: { auditID: "wrapped-aks" } });
    const [skipped] = decodeRecord({ message: JSON.stringify(EXPORT[0]) });
    expect(skipped?.skipped).toMatch(/not a Kubernetes API call/);
  });
});
