import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { compileSigmaRule, loadSigmaPack, loadSigmaRules, parseSigmaCondition, SHIPPED_SIGMA_DIR, SigmaLoadError } from "@k8s-audit/rules";
import { parsedAuditEvent } from "@k8s-audit/testkit";
import { describe, expect, it } from "vitest";
import { runRuleTests, runTimedRuleTests } from "../src/index.js";

const logsource = { product: "kubernetes", service: "audit" };
/** A bare get of `/` by `u`: only the fields every event carries, so each case's match comes from what it sets. */
const event = (o: Record<string, unknown>) =>
  parsedAuditEvent({
    level: "Metadata",
    auditID: "x",
    requestURI: "/",
    verb: "get",
    user: { username: "u" },
    sourceIPs: undefined,
    userAgent: undefined,
    objectRef: undefined,
    responseStatus: undefined,
    requestReceivedTimestamp: undefined,
    stageTimestamp: "2026-01-01T00:00:00Z",
    annotations: undefined,
    ...o,
  });

describe("Sigma", () => {
  it("loads the project's Sigma rules unmodified and each fires on its test events and not on the others", () => {
    const rules = loadSigmaRules([SHIPPED_SIGMA_DIR]);
    expect(rules.length).toBeGreaterThanOrEqual(16);
    for (const r of rules) expect(r.definition.tests.fire.length, r.source).toBeGreaterThan(0);
    const failures = runRuleTests(rules).flatMap((r) => r.failures.map((f) => `${r.source}: ${f}`));
    expect(failures).toEqual([]);
  });

  it("parses conditions with precedence, parentheses and quantifiers", () => {
    expect(parseSigmaCondition("a or b and not c")).toEqual({
      kind: "or",
      parts: [
        { kind: "ref", name: "a" },
        {
          kind: "and",
          parts: [
            { kind: "ref", name: "b" },
            { kind: "not", inner: { kind: "ref", name: "c" } },
          ],
        },
      ],
    });
    expect(parseSigmaCondition("(1 of sel_*) and not all of them")).toMatchObject({ kind: "and" });
    expect(() => parseSigmaCondition("a and")).toThrow(/ends too early/);
  });

  it("supports the value modifiers and case-insensitive wildcards", () => {
    const rule = compileSigmaRule(
      {
        title: "t",
        logsource,
        detection: {
          s1: { "userAgent|startswith": "CURL/", "requestURI|contains|all": ["/api", "secrets"] },
          s2: { "sourceIPs|cidr": "10.0.0.0/8", "responseStatus.code|gte": 400 },
          s3: { "user.username": "system:*", "objectRef.namespace": null },
          condition: "1 of s*",
        },
      },
      "inline",
    );
    expect(rule.matches(event({ userAgent: "curl/8", requestURI: "/api/v1/secrets" }))).toBe(true);
    expect(rule.matches(event({ userAgent: "curl/8", requestURI: "/api/v1/pods" }))).toBe(false);
    expect(rule.matches(event({ sourceIPs: ["10.2.3.4"], responseStatus: { code: 403 } }))).toBe(true);
    expect(rule.matches(event({ user: { username: "SYSTEM:kube-proxy" } }))).toBe(true);
    expect(rule.matches(event({ user: { username: "system:x" }, objectRef: { namespace: "a" } }))).toBe(false);
  });

  it("maps the usual pseudo-fields (apiGroup, hostPath, capabilities) onto audit event paths", () => {
    const rule = compileSigmaRule(
      { title: "t", logsource, detection: { s: { apiGroup: "apps", "hostPath|exists": true }, condition: "s" } },
      "inline",
    );
    const body = { spec: { template: { spec: { volumes: [{ hostPath: { path: "/" } }] } } } };
    expect(rule.matches(event({ objectRef: { apiGroup: "apps" }, requestObject: body }))).toBe(true);
    expect(rule.matches(event({ objectRef: { apiGroup: "apps" }, requestObject: {} }))).toBe(false);
  });

  it("reports a malformed Sigma rule with its file and the reason", () => {
    const dir = mkdtempSync(join(tmpdir(), "sigma-"));
    writeFileSync(
      join(dir, "bad.yml"),
      "title: Bad\nlogsource: { product: kubernetes, service: audit }\ndetection:\n  sel: { verb: get }\n  condition: sel and missing\n",
    );
    writeFileSync(
      join(dir, "wrong-source.yml"),
      "title: Windows\nlogsource: { product: windows }\ndetection: { sel: { a: 1 }, condition: sel }\n",
    );
    let error: SigmaLoadError | undefined;
    try {
      loadSigmaRules([dir]);
    } catch (e) {
      error = e as SigmaLoadError;
    }
    expect(error).toBeInstanceOf(SigmaLoadError);
    expect(error?.message).toContain(`${join(dir, "bad.yml")}: condition names "missing", which detection does not define`);
    expect(error?.message).toContain(`${join(dir, "wrong-source.yml")}: logsource.product`);
  });
});

describe("Sigma correlation rules", () => {
  const pack = loadSigmaPack([SHIPPED_SIGMA_DIR]);

  it("compiles event_count, value_count, temporal and temporal_ordered onto the window engine, each passing its cases", () => {
    const byType = pack.windowRules.map((r) =>
      r.definition.kind === "sequence"
        ? r.definition.ordered
          ? "temporal_ordered"
          : "temporal"
        : r.definition.kind === "window" && r.definition.distinct
          ? "value_count"
          : "event_count",
    );
    expect(byType.sort()).toEqual(["event_count", "temporal", "temporal_ordered", "value_count"]);
    const results = runTimedRuleTests(pack.windowRules);
    expect(results).toHaveLength(4);
    expect(results.flatMap((r) => r.failures.map((f) => `${r.source}: ${f}`))).toEqual([]);
  });

  it("keeps the rules a correlation names from alerting on their own (Sigma's generate: false)", () => {
    const ids = pack.rules.map((r) => r.definition.name);
    expect(ids).not.toContain("Kubernetes Secret Read");
    expect(ids).not.toContain("Kubernetes Pod Exec");
  });

  it("names the file and the reason for a correlation that names an unknown rule", () => {
    const dir = mkdtempSync(join(tmpdir(), "sigma-"));
    writeFileSync(
      join(dir, "bad.yml"),
      "title: t\ncorrelation:\n  type: event_count\n  rules: [nope]\n  group-by: [user.username]\n  timespan: 1m\n  condition: { gte: 3 }\n",
    );
    expect(() => loadSigmaPack([dir])).toThrow(/bad\.yml: correlation names rule "nope"/);
  });
});
