import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadDetection, loadRulePack, SHIPPED_RULES_DIR } from "@k8s-audit/rules";
import { describe, expect, it } from "vitest";
import { evasionCases, runEvasionTests, runRuleTests, runTimedRuleTests } from "../src/index.js";

/**
 * A failure is only useful if its name leads to one case: rule tests name cases `fire[i]` / `quiet[i]`, evasion cases
 * `<variant> (fire[i])`. Names are generated, never written by hand, so these tests hold the generators to names that
 * are non-empty, unique within a rule, and attached to the case that actually failed.
 */

/** The names in `names` that are empty or given more than once, each once. */
function badNames(names: readonly string[]): string[] {
  const seen = new Set<string>();
  const bad = new Set<string>();
  for (const name of names) {
    if (name.trim() === "" || seen.has(name)) bad.add(JSON.stringify(name));
    seen.add(name);
  }
  return [...bad];
}

/** The shipped pack plus the site rules written here (a site directory, as an operator adds one). */
function withSiteRules(files: Record<string, string>) {
  const dir = mkdtempSync(join(tmpdir(), "case-names-"));
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
  return loadRulePack([SHIPPED_RULES_DIR, dir]);
}

/** Two cases of each kind, one of each wrong: deleting a configmap is what the rule looks for. */
const CONFIGMAP_DELETE = `
id: site.configmap_deleted
name: ConfigMap deleted
description: A configmap was deleted.
severity: medium
threat: { tactics: [TA0040] }
condition:
  all:
    - { field: verb, equals: delete }
    - { field: objectRef.resource, equals: configmaps }
    - { field: cluster, equals: test }
tests:
  fire:
    - { verb: delete, objectRef: { resource: configmaps, namespace: default, name: c } }
    - { verb: get, objectRef: { resource: configmaps, namespace: default, name: c } }
  quiet:
    - { verb: delete, objectRef: { resource: configmaps, namespace: default, name: c } }
    - { verb: delete, objectRef: { resource: secrets, namespace: default, name: s } }
`;

const FORBIDDEN_BURST = `
kind: window
id: site.forbidden_burst
name: Forbidden burst
description: Five forbidden requests by one principal within a minute.
severity: medium
threat: { tactics: [TA0007] }
window: 60
group_by: [cluster, user.username]
condition: { field: responseStatus.code, equals: 403 }
threshold: { min: 5 }
tests:
  fire:
    - - { count: 6, every: 1, event: { responseStatus: { code: 403 } } }
    - - { count: 2, every: 1, event: { responseStatus: { code: 403 } } }
  quiet:
    - - { count: 9, every: 1, event: { responseStatus: { code: 403 } } }
`;

describe("case names", () => {
  it("are non-empty and unique within each shipped rule's evasion cases", () => {
    const cases = evasionCases(loadDetection().rules);
    // A variant's own name, then the firing case it rewrote: an empty variant would still leave " (fire[0])".
    const unnamed = cases.filter((c) => !/^\S.* \(fire\[\d+\]\)$/.test(c.variant)).map((c) => `${c.rule}: ${JSON.stringify(c.variant)}`);
    expect(unnamed).toEqual([]);
    const byRule = new Map<string, string[]>();
    for (const c of cases) byRule.set(c.rule, [...(byRule.get(c.rule) ?? []), c.variant]);
    expect(byRule.size).toBeGreaterThan(20);
    const bad = [...byRule].flatMap(([rule, names]) => badNames(names).map((n) => `${rule}: ${n}`));
    expect(bad).toEqual([]);
  });

  it("tell a rule's firing cases apart in its evasion cases", () => {
    const { rules } = withSiteRules({ "site.yaml": CONFIGMAP_DELETE });
    const names = evasionCases(rules.filter((r) => r.definition.id === "site.configmap_deleted")).map((c) => c.variant);
    expect(names).toContain("as written (fire[0])");
    expect(names).toContain("as written (fire[1])");
    expect(badNames(names)).toEqual([]);
  });

  it("name the failing rule test cases, and only those", () => {
    const { rules } = withSiteRules({ "site.yaml": CONFIGMAP_DELETE });
    const [result] = runRuleTests(rules.filter((r) => r.definition.id === "site.configmap_deleted"));
    expect(result?.failures).toEqual(["fire[1]: expected an alert, got none", "quiet[0]: expected no alert, got an alert"]);
    expect(result?.passed).toBe(2);
  });

  it("name the failing timed rule test cases, and only those", () => {
    const { windowRules } = withSiteRules({ "site-window.yaml": FORBIDDEN_BURST });
    const [result] = runTimedRuleTests(windowRules.filter((r) => r.definition.id === "site.forbidden_burst"));
    expect(result?.failures).toEqual(["fire[1]: expected an alert, got none", "quiet[0]: expected no alert, got an alert"]);
    expect(result?.passed).toBe(1);
  });

  it("name the evasion variant that slipped past a rule", () => {
    // The rule wants `cluster: test` (the test defaults), so the archive variant, which has no cluster, slips past.
    const { rules } = withSiteRules({ "site.yaml": CONFIGMAP_DELETE });
    const [result] = runEvasionTests(rules.filter((r) => r.definition.id === "site.configmap_deleted"));
    expect(result?.failures).toContain("no cluster (archive) (fire[0]): expected site.configmap_deleted, got no alert");
  });
});
