import { loadRules } from "@k8s-audit/rules";
import { describe, expect, it } from "vitest";
import { evasionCases, runEvasionTests } from "../src/index.js";

describe("evasion suite (offline)", () => {
  const rules = loadRules();

  it("every medium or higher rule still fires on every variant an attacker would try", () => {
    const results = runEvasionTests(rules);
    expect(results.length).toBeGreaterThan(20);
    expect(results.flatMap((r) => r.failures.map((f) => `${r.rule}: ${f}`))).toEqual([]);
    for (const r of results) expect(r.passed, r.rule).toBeGreaterThanOrEqual(3);
  });

  it("covers the variants the issue names, for the rules they apply to", () => {
    const variants = new Set(evasionCases(rules).map((c) => c.variant.replace(/ \(fire\[\d+\]\)$/, "")));
    for (const v of [
      "JSON patch",
      "merge patch",
      "server-side apply",
      "patch with the result in the response",
      "Deployment template",
      "CronJob template",
      "as init containers",
      "as an ephemeral container (kubectl debug)",
      "beside an allow-listed container",
      "impersonated",
      "kube-system add-on token",
      "node identity",
      "refused by authorization",
      "refused by admission",
      "reused auditID",
      "ResponseStarted only",
      "no cluster (archive)",
      "far-future event before it",
      "body padded past the size limit",
    ])
      expect(variants, v).toContain(v);
  });
});
