import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { AuditEvent } from "@k8s-audit/core";
import { loadRulePack, loadRules, RuleLoadError, SHIPPED_RULES_DIR } from "@k8s-audit/rules";
import { describe, expect, it } from "vitest";
import { runRuleTests, runTimedRuleTests } from "../src/index.js";

describe("shipped rule pack", () => {
  const rules = loadRules();

  it("loads and every rule passes its own inline tests", () => {
    expect(rules.length).toBeGreaterThan(0);
    const failures = runRuleTests(rules).flatMap((r) => r.failures.map((f) => `${r.rule}: ${f}`));
    expect(failures).toEqual([]);
  });

  it("every timed rule (windows, sequences, silence) passes its own inline cases", () => {
    const { windowRules } = loadRulePack();
    const results = runTimedRuleTests(windowRules);
    expect(results.map((r) => r.rule).sort()).toEqual(windowRules.map((r) => r.definition.id).sort());
    expect(results.flatMap((r) => r.failures.map((f) => `${r.rule}: ${f}`))).toEqual([]);
    for (const r of results) expect(r.passed, r.rule).toBeGreaterThanOrEqual(2);
  });
});

describe("rule loading errors", () => {
  it("names the file, the rule and the key", () => {
    const dir = mkdtempSync(join(tmpdir(), "rules-"));
    writeFileSync(
      join(dir, "bad.yaml"),
      "id: site.bad\nname: Bad\ndescription: d\nseverity: severe\nthreat: { tactics: [TA0004] }\ncondition: { field: verb, equals: get }\ntests: { fire: [{}], quiet: [{}] }\n",
    );
    let error: RuleLoadError | undefined;
    try {
      loadRules([SHIPPED_RULES_DIR, dir]);
    } catch (e) {
      error = e as RuleLoadError;
    }
    expect(error).toBeInstanceOf(RuleLoadError);
    expect(error?.message).toContain(`${join(dir, "bad.yaml")}: rule site.bad: severity:`);
  });

  it("lets a site extend a shipped list without editing the shipped files", () => {
    const dir = mkdtempSync(join(tmpdir(), "rules-"));
    writeFileSync(join(dir, "site.yaml"), "lists:\n  cluster_admin_roles: [acme-superuser]\n");
    const rule = loadRules([SHIPPED_RULES_DIR, dir]).find((r) => r.definition.id === "rbac.binding_to_cluster_admin");
    const event = {
      auditID: "site-list",
      verb: "create",
      objectRef: { apiGroup: "rbac.authorization.k8s.io", resource: "clusterrolebindings" },
      requestObject: { roleRef: { name: "acme-superuser" } },
    };
    expect(rule?.matches(event)).toBe(true);
  });
});

describe("site exceptions", () => {
  it("silence a rule for listed users, namespaces and images without editing the shipped files", () => {
    const dir = mkdtempSync(join(tmpdir(), "rules-"));
    writeFileSync(
      join(dir, "exceptions.yaml"),
      [
        "exceptions:",
        "  - rule: workload.privileged_container",
        "    images: [registry.example.com/node-agent:*]",
        "  - rule: '*'",
        "    users: [system:serviceaccount:argocd:argocd-application-controller]",
        "",
      ].join("\n"),
    );
    const rules = loadRules([SHIPPED_RULES_DIR, dir]);
    const privileged = rules.find((r) => r.definition.id === "workload.privileged_container");
    const pod = (image: string, user = "alice") =>
      ({
        auditID: `pod-${image}-${user}`,
        verb: "create",
        user: { username: user },
        objectRef: { resource: "pods", namespace: "ops" },
        requestObject: { spec: { containers: [{ name: "a", image, securityContext: { privileged: true } }] } },
      }) as unknown as AuditEvent;
    expect(privileged?.matches(pod("docker.io/library/nginx:1"))).toBe(true);
    expect(privileged?.matches(pod("registry.example.com/node-agent:2.1"))).toBe(false);
    expect(privileged?.matches(pod("docker.io/library/nginx:1", "system:serviceaccount:argocd:argocd-application-controller"))).toBe(false);
  });

  it("names an exception for a rule that does not exist", () => {
    const dir = mkdtempSync(join(tmpdir(), "rules-"));
    writeFileSync(join(dir, "exceptions.yaml"), "exceptions:\n  - rule: no.such_rule\n    users: [x]\n");
    expect(() => loadRules([SHIPPED_RULES_DIR, dir])).toThrow(/exceptions: no rule with id no.such_rule/);
  });
});
