import { AuditEventSchema, describeIssues } from "@k8s-audit/core";
import { Detector } from "./engine.js";
import type { CompiledRule } from "./loader.js";

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
