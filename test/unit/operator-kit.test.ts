import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";

const kit = (f: string) => readFileSync(new URL(`../../packages/ingest/kit/${f}`, import.meta.url), "utf8");
const policy = parse(kit("audit-policy.yaml"));

interface Req {
  user?: string;
  groups?: string[];
  verb: string;
  group?: string;
  resource?: string;
  subresource?: string;
  path?: string;
}

/** An audit policy rule, as much of it as levelFor reads. */
interface PolicyRule {
  level: string;
  users?: string[];
  userGroups?: string[];
  verbs?: string[];
  nonResourceURLs?: string[];
  resources?: GroupResources[];
}

interface GroupResources {
  group?: string;
  resources?: string[];
}

/** The apiserver's policy evaluation (first matching rule wins), enough to check what our policy logs. */
function levelFor(req: Req): string {
  const rule = (policy.rules as PolicyRule[]).find((r) => appliesTo(r, req));
  return rule?.level ?? "None";
}

function appliesTo(rule: PolicyRule, req: Req): boolean {
  if (rule.users && !rule.users.includes(req.user ?? "")) return false;
  if (rule.userGroups && !rule.userGroups.some((g) => req.groups?.includes(g))) return false;
  if (rule.verbs && !rule.verbs.includes(req.verb)) return false;
  if (rule.nonResourceURLs && !matchesPath(rule.nonResourceURLs, req.path)) return false;
  if (rule.resources && !matchesResource(rule.resources, req)) return false;
  return true;
}

/** A listed URL, or a prefix written with a trailing `*`. */
function matchesPath(urls: string[], path: string | undefined): boolean {
  if (!path) return false;
  return urls.some((p) => (p.endsWith("*") ? path.startsWith(p.slice(0, -1)) : p === path));
}

/** The request's group and, when the rule lists them, its resource (`resource/subresource` for a subresource). */
function matchesResource(groups: GroupResources[], req: Req): boolean {
  if (!req.resource) return false;
  const full = req.subresource ? `${req.resource}/${req.subresource}` : req.resource;
  return groups.some((gr) => (gr.group ?? "") === (req.group ?? "") && (!gr.resources || gr.resources.includes(full)));
}

describe("operator kit: audit policy", () => {
  it("is an audit.k8s.io/v1 Policy without the RequestReceived stage", () => {
    expect(policy.apiVersion).toBe("audit.k8s.io/v1");
    expect(policy.kind).toBe("Policy");
    expect(policy.omitStages).toEqual(["RequestReceived"]);
  });

  it("logs secrets, configmaps and token APIs at Metadata only", () => {
    expect(levelFor({ verb: "get", resource: "secrets", user: "alice" })).toBe("Metadata");
    expect(levelFor({ verb: "update", resource: "configmaps", user: "alice" })).toBe("Metadata");
    expect(levelFor({ verb: "create", resource: "serviceaccounts", subresource: "token" })).toBe("Metadata");
    expect(levelFor({ verb: "create", group: "authentication.k8s.io", resource: "tokenreviews" })).toBe("Metadata");
  });

  it("logs RBAC and admission webhooks with full request and response", () => {
    expect(levelFor({ verb: "create", group: "rbac.authorization.k8s.io", resource: "clusterrolebindings" })).toBe("RequestResponse");
    expect(levelFor({ verb: "delete", group: "admissionregistration.k8s.io", resource: "validatingwebhookconfigurations" })).toBe(
      "RequestResponse",
    );
  });

  it("logs workload writes at Request and everything else at Metadata", () => {
    expect(levelFor({ verb: "create", resource: "pods" })).toBe("Request");
    expect(levelFor({ verb: "patch", group: "apps", resource: "daemonsets" })).toBe("Request");
    expect(levelFor({ verb: "create", resource: "pods", subresource: "exec" })).toBe("Metadata");
    // Every kind that carries a pod spec: a PodTemplate or ReplicationController can hide a privileged container too.
    expect(levelFor({ verb: "create", resource: "podtemplates" })).toBe("Request");
    expect(levelFor({ verb: "patch", resource: "replicationcontrollers" })).toBe("Request");
    // Ingresses with their result: a patch of the routing need not restate tls.
    expect(levelFor({ verb: "patch", group: "networking.k8s.io", resource: "ingresses" })).toBe("RequestResponse");
    expect(levelFor({ verb: "list", resource: "pods" })).toBe("Metadata");
  });

  it("drops authenticated health probes but keeps anonymous ones", () => {
    expect(levelFor({ verb: "get", path: "/healthz", groups: ["system:authenticated"] })).toBe("None");
    expect(levelFor({ verb: "get", path: "/healthz", user: "system:anonymous", groups: ["system:unauthenticated"] })).toBe("Metadata");
  });
});

describe("operator kit: webhook kubeconfig and flags", () => {
  it("points at an HTTPS /audit/<cluster> URL with a client certificate", () => {
    const kubeconfig = parse(kit("webhook-kubeconfig.yaml"));
    expect(kubeconfig.clusters[0].cluster.server).toMatch(/^https:\/\/[^/]+\/audit\/[a-zA-Z0-9._-]+$/);
    expect(kubeconfig.clusters[0].cluster["certificate-authority"]).toBeTruthy();
    expect(kubeconfig.users[0].user["client-certificate"]).toBeTruthy();
    expect(kubeconfig.users[0].user["client-key"]).toBeTruthy();
  });

  it("names the policy, the webhook config, batch mode and untruncated events", () => {
    const flags = kit("apiserver-flags.txt");
    for (const f of [
      "--audit-policy-file=",
      "--audit-webhook-config-file=",
      "--audit-webhook-mode=batch",
      "--audit-webhook-truncate-enabled=false",
      "--audit-webhook-batch-max-size=",
    ]) {
      expect(flags).toContain(f);
    }
  });

  it("forgives an ingest outage of well over two minutes (docs/webhook-delivery.md)", () => {
    const backoff = /^--audit-webhook-initial-backoff=(\d+)s$/m.exec(kit("apiserver-flags.txt"));
    expect(backoff, "the kit sets the initial backoff").not.toBeNull();
    // The apiserver's audit webhook retries a batch 5 times: waits b, 1.5b, 2.25b, 3.375b (k8s.io/apiserver webhook.go).
    const forgivenSeconds = Number(backoff?.[1]) * (1 + 1.5 + 2.25 + 3.375);
    expect(forgivenSeconds).toBeGreaterThanOrEqual(150);
    // …but not so long that retrying batches pile up in the apiserver's memory for many minutes.
    expect(forgivenSeconds).toBeLessThanOrEqual(300);
  });
});
