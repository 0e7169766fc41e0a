import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { AuditEventSchema } from "@k8s-audit/core";
import { Detector } from "@k8s-audit/detector";
import { loadRules } from "@k8s-audit/rules";
import { describe, expect, it } from "vitest";

/**
 * Falco's labelled k8s_audit fixtures (third-party, read from ../shared at test time): each attack file must fire a
 * rule of ours with the same meaning; the benign controls must raise nothing of medium severity or higher.
 * Labels from ../shared/real-audit/SOURCES.md (Falco's own test manifest).
 */
const DIR = resolve(
  process.env.K8S_AUDIT_REAL_AUDIT_DIR ?? new URL("../../../shared/real-audit", import.meta.url).pathname,
  "falcosecurity-falco",
);
const HAVE = existsSync(DIR);
if (!HAVE) console.warn(`[falco conformance] ${DIR} not found: skipped (set K8S_AUDIT_REAL_AUDIT_DIR)`);

/** Falco fixture → the Falco rule it must fire → our rules of the same meaning (any of them). */
const ATTACKS: Record<string, { falco: string; ours: string[] }> = {
  anonymous_creates_namespace_foo: { falco: "Anonymous Request Allowed", ours: ["access.anonymous_allowed"] },
  attach_cluster_admin_role: { falco: "Attach to cluster-admin Role", ours: ["rbac.binding_to_cluster_admin"] },
  attach_pod: { falco: "Attach/Exec Pod", ours: ["workload.attach_to_pod"] },
  exec_pod: { falco: "Attach/Exec Pod", ours: ["workload.exec_into_pod"] },
  create_cluster_role_pod_exec: { falco: "ClusterRole With Pod Exec Created", ours: ["rbac.role_with_pod_exec"] },
  create_cluster_role_wildcard_resources: { falco: "ClusterRole With Wildcard Created", ours: ["rbac.role_with_wildcard_resources"] },
  create_cluster_role_wildcard_verbs: { falco: "ClusterRole With Wildcard Created", ours: ["rbac.role_with_wildcard_verbs"] },
  create_cluster_role_write_privileges: { falco: "ClusterRole With Write Privileges Created", ours: ["rbac.role_with_write_privileges"] },
  create_clusterrole: { falco: "Role/Clusterrole Created", ours: ["rbac.role_created"] },
  create_clusterrolebinding: { falco: "Role/Clusterrolebinding Created", ours: ["rbac.binding_created"] },
  create_configmap_sensitive_values: { falco: "Configmap With Private Credentials", ours: ["configmap.credentials"] },
  create_nginx_pod_privileged: { falco: "Create Privileged Pod", ours: ["workload.privileged_container"] },
  create_nginx_pod_privileged_2nd_container: { falco: "Create Privileged Pod", ours: ["workload.privileged_container"] },
  create_nginx_pod_no_secctx_1st_container_privileged_2nd_container: {
    falco: "Create Privileged Pod",
    ours: ["workload.privileged_container"],
  },
  create_nginx_pod_hostnetwork: { falco: "Create HostNetwork Pod", ours: ["workload.host_network"] },
  create_nginx_pod_sensitive_mount: { falco: "Create Sensitive Mount Pod", ours: ["workload.sensitive_host_mount"] },
  create_nginx_pod_sensitive_mount_2nd_container: { falco: "Create Sensitive Mount Pod", ours: ["workload.sensitive_host_mount"] },
  create_nginx_service_nodeport: { falco: "Create NodePort Service", ours: ["service.nodeport_created"] },
  create_pod_kube_system_namespace: { falco: "Pod Created in Kube Namespace", ours: ["workload.pod_in_kube_namespace"] },
  create_pod_kube_public_namespace: { falco: "Pod Created in Kube Namespace", ours: ["workload.pod_in_kube_namespace"] },
  create_serviceaccount_kube_system_namespace: {
    falco: "Service Account Created in Kube Namespace",
    ours: ["serviceaccount.created_in_kube_namespace"],
  },
  create_serviceaccount_kube_public_namespace: {
    falco: "Service Account Created in Kube Namespace",
    ours: ["serviceaccount.created_in_kube_namespace"],
  },
  create_secret: { falco: "Secret Created", ours: ["secret.created"] },
  create_kube_system_secret: { falco: "Secret Created", ours: ["secret.created"] },
  delete_secret: { falco: "Secret Deleted", ours: ["secret.deleted"] },
  delete_cluster_role_kube_aggregator: { falco: "System ClusterRole Deleted", ours: ["rbac.system_role_modified"] },
  modify_cluster_role_node_problem_detector: { falco: "System ClusterRole Modified", ours: ["rbac.system_role_modified"] },
};

const BENIGN = [
  "create_nginx_service_nonodeport",
  "create_nginx_pod_nohostnetwork",
  "create_nginx_pod_unprivileged",
  "create_nginx_pod_unsensitive_mount",
  "create_configmap_no_sensitive_values",
  "create_service_account_token_secret",
  "minikube_creates_namespace_foo",
];

function alertsFor(file: string) {
  const detector = new Detector(loadRules());
  const lines = readFileSync(join(DIR, `${file}.json`), "utf8")
    .split("\n")
    .filter((l) => l.trim());
  return lines.flatMap((l) => detector.evaluate(AuditEventSchema.parse(JSON.parse(l))));
}

describe.skipIf(!HAVE)("Falco conformance on Falco's own fixtures", () => {
  it("covers every labelled fixture that exists", () => {
    const files = new Set(readdirSync(DIR).map((f) => f.replace(/\.json$/, "")));
    for (const name of [...Object.keys(ATTACKS), ...BENIGN]) expect(files.has(name), name).toBe(true);
  });

  it.each(Object.entries(ATTACKS))("%s fires a rule meaning %s", (file, { ours }) => {
    const fired = alertsFor(file).map((a) => a.rule.id);
    expect(
      fired.filter((id) => ours.includes(id)),
      `fired: ${fired.join(", ") || "nothing"}`,
    ).not.toEqual([]);
  });

  it.each(BENIGN)("benign control %s raises nothing of medium or higher", (file) => {
    const loud = alertsFor(file).filter((a) => a.event.severity >= 47);
    expect(loud.map((a) => a.rule.id)).toEqual([]);
  });

  it("the malformed fixture is rejected by the schema, not by a crash", () => {
    expect(AuditEventSchema.safeParse(JSON.parse(readFileSync(join(DIR, "fal_01_003.json"), "utf8"))).success).toBe(false);
  });
});
