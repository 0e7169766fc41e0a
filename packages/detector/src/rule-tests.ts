import { AuditEventSchema, describeIssues } from "@k8s-audit/core";
import type { CompiledRule, CompiledWindowRule, TimedTestGroup } from "@k8s-audit/rules";
import { WindowEngine } from "@k8s-audit/windows";
import { Detector } from "./engine.js";

/**
 * Defaults under every inline test event, so a rule's tests state only what matters to the rule. The result must still
 * be a valid audit.k8s.io/v1 Event.
 */
export const TEST_EVENT_DEFAULTS = {
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

type CaseOutcome = { fired: boolean } | { invalid: string };

interface TestedRule<Case> {
  readonly definition: { id: string; tests: { fire: readonly Case[]; quiet: readonly Case[] } };
  readonly source: string;
}

/** Runs every rule's fire and quiet cases (rules without cases are skipped: third-party Sigma rules may have none). */
function runCases<Case, R extends TestedRule<Case>>(rules: readonly R[], run: (rule: R, testCase: Case, label: string) => CaseOutcome) {
  return rules
    .filter((r) => r.definition.tests.fire.length + r.definition.tests.quiet.length > 0)
    .map((rule): RuleTestResult => {
      const failures: string[] = [];
      let passed = 0;
      const cases = [
        ...rule.definition.tests.fire.map((c, i) => ({ c, label: `fire[${i}]`, shouldFire: true })),
        ...rule.definition.tests.quiet.map((c, i) => ({ c, label: `quiet[${i}]`, shouldFire: false })),
      ];
      for (const { c, label, shouldFire } of cases) {
        const outcome = run(rule, c, label);
        if ("invalid" in outcome) failures.push(`${label}: not a valid audit event: ${outcome.invalid}`);
        else if (outcome.fired === shouldFire) passed++;
        else failures.push(`${label}: expected ${shouldFire ? "an alert" : "no alert"}, got ${outcome.fired ? "an alert" : "none"}`);
      }
      return { rule: rule.definition.id, source: rule.source, passed, failures };
    });
}

/** Per-event rules: each case is one event over the defaults, evaluated by a fresh detector (each case stands alone). */
export function runRuleTests(rules: readonly CompiledRule[]): RuleTestResult[] {
  return runCases(rules, (rule, event: Record<string, unknown>, label) => {
    const parsed = AuditEventSchema.safeParse({ ...TEST_EVENT_DEFAULTS, auditID: `test-${rule.definition.id}-${label}`, ...event });
    if (!parsed.success) return { invalid: describeIssues(parsed.error) };
    // Only the rule's own alert counts: a refused quiet case may raise the rule's attempt alert, which is another rule.
    const alerts = new Detector([rule]).evaluate(parsed.data);
    return { fired: alerts.some((a) => a.rule.id === rule.definition.id) };
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

/** Timed rules: each case's events fed in time order to a fresh engine, flushed at the end. */
export function runTimedRuleTests(rules: readonly CompiledWindowRule[]): RuleTestResult[] {
  return runCases(rules, (rule, groups: TimedTestGroup[], label) => {
    const engine = new WindowEngine([rule]);
    let fired = false;
    for (const { event } of caseEvents(rule.definition.id, label, groups)) {
      const parsed = AuditEventSchema.safeParse(event);
      if (!parsed.success) return { invalid: describeIssues(parsed.error) };
      if (engine.offer(parsed.data).length > 0) fired = true;
    }
    return { fired: engine.flush().length > 0 || fired };
  });
}
