import { AuditEventSchema, describeIssues } from "@k8s-audit/core";
import { Detector } from "./engine.js";
import type { CompiledRule } from "./loader.js";
import { type CompiledWindowRule, WindowEngine } from "./windows/engine.js";
import type { TimedTestGroup } from "./windows/window-rule.js";

/**
 * Defaults under every inline test event, so a rule's tests state only what matters to the rule. The result must still
 * be a valid audit.k8s.io/v1 Event.
 */
const TEST_EVENT_DEFAULTS = {
  kind: "Event",
  apiVersion: "audit.k8s.io/v1",
  level: "RequestResponse",
  stage: "ResponseComplete",
  requestURI: "/",
  user: { username: "test-user", groups: ["system:authenticated"] },
  sourceIPs: ["192.0.2.10"],
  userAgent: "kubectl/v1.31.0 (linux/amd64) kubernetes/abcdef",
  responseStatus: { metadata: {}, code: 200 },
  requestReceivedTimestamp: "2026-01-01T00:00:00.000000Z",
  stageTimestamp: "2026-01-01T00:00:00.010000Z",
  cluster: "test",
};

export interface RuleTestResult {
  rule: string;
  source: string;
  passed: number;
  failures: string[];
}

/** Runs the inline tests of every rule that has some (third-party Sigma rules may have none). */
export function runRuleTests(rules: readonly CompiledRule[]): RuleTestResult[] {
  return rules
    .filter((r) => r.definition.tests.fire.length + r.definition.tests.quiet.length > 0)
    .map((rule) => {
      const failures: string[] = [];
      let passed = 0;
      const cases = [
        ...rule.definition.tests.fire.map((e, i) => ({ event: e, i, shouldFire: true })),
        ...rule.definition.tests.quiet.map((e, i) => ({ event: e, i, shouldFire: false })),
      ];
      for (const { event, i, shouldFire } of cases) {
        const label = `${shouldFire ? "fire" : "quiet"}[${i}]`;
        const parsed = AuditEventSchema.safeParse({ ...TEST_EVENT_DEFAULTS, auditID: `test-${rule.definition.id}-${label}`, ...event });
        if (!parsed.success) {
          failures.push(`${label}: not a valid audit event: ${describeIssues(parsed.error)}`);
          continue;
        }
        // A fresh detector per case: each case stands alone.
        const fired = new Detector([rule]).evaluate(parsed.data).length > 0;
        if (fired === shouldFire) passed++;
        else failures.push(`${label}: expected ${shouldFire ? "an alert" : "no alert"}, got ${fired ? "an alert" : "none"}`);
      }
      return { rule: rule.definition.id, source: rule.source, passed, failures };
    });
}

const TEST_START = Date.parse(TEST_EVENT_DEFAULTS.stageTimestamp);
/** Timed cases are mostly traffic: an ordinary read unless the group says otherwise. */
const TIMED_TEST_DEFAULTS = {
  ...TEST_EVENT_DEFAULTS,
  level: "Metadata",
  verb: "list",
  objectRef: { resource: "configmaps", namespace: "default", apiVersion: "v1" },
};

/** One timed test case's events, in time order: each group's `count` events, `{{i}}` replaced by the index. */
function caseEvents(ruleId: string, label: string, groups: TimedTestGroup[]) {
  const out: { at: number; event: Record<string, unknown> }[] = [];
  groups.forEach((group, g) => {
    const template = JSON.stringify(group.event);
    const varies = template.includes("{{i}}");
    const fixed = varies ? undefined : (JSON.parse(template) as Record<string, unknown>);
    for (let i = 0; i < group.count; i++) {
      const at = TEST_START + Math.round((group.at + i * group.every) * 1000);
      const fields = fixed ?? (JSON.parse(template.replaceAll("{{i}}", String(i))) as Record<string, unknown>);
      out.push({
        at,
        event: {
          ...TIMED_TEST_DEFAULTS,
          auditID: `test-${ruleId}-${label}-${g}-${i}`,
          ...fields,
          stageTimestamp: new Date(at).toISOString(),
        },
      });
    }
  });
  return out.sort((a, b) => a.at - b.at);
}

/** Runs each timed rule's inline cases: a fresh engine per case, fed in time order and flushed at the end. */
export function runTimedRuleTests(rules: readonly CompiledWindowRule[]): RuleTestResult[] {
  return rules
    .filter((r) => r.definition.tests.fire.length + r.definition.tests.quiet.length > 0)
    .map((rule) => {
      const failures: string[] = [];
      let passed = 0;
      const cases = [
        ...rule.definition.tests.fire.map((groups, i) => ({ groups, label: `fire[${i}]`, shouldFire: true })),
        ...rule.definition.tests.quiet.map((groups, i) => ({ groups, label: `quiet[${i}]`, shouldFire: false })),
      ];
      for (const { groups, label, shouldFire } of cases) {
        const engine = new WindowEngine([rule]);
        let fired = false;
        let invalid: string | undefined;
        for (const { event } of caseEvents(rule.definition.id, label, groups)) {
          const parsed = AuditEventSchema.safeParse(event);
          if (!parsed.success) {
            invalid = describeIssues(parsed.error);
            break;
          }
          if (engine.offer(parsed.data).length > 0) fired = true;
        }
        if (invalid) {
          failures.push(`${label}: not a valid audit event: ${invalid}`);
          continue;
        }
        if (engine.flush().length > 0) fired = true;
        if (fired === shouldFire) passed++;
        else failures.push(`${label}: expected ${shouldFire ? "an alert" : "no alert"}, got ${fired ? "an alert" : "none"}`);
      }
      return { rule: rule.definition.id, source: rule.source, passed, failures };
    });
}
