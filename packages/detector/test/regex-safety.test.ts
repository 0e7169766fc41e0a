import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type AuditEvent, AuditEventSchema } from "@k8s-audit/core";
import {
  compileGlob,
  compileRegex,
  loadRules,
  loadSigmaRules,
  REGEX_INPUT_CAP,
  RuleLoadError,
  SHIPPED_RULES_DIR,
  SHIPPED_SIGMA_DIR,
  SigmaLoadError,
} from "@k8s-audit/rules";
import { describe, expect, it } from "vitest";
import { Detector, TEST_EVENT_DEFAULTS } from "../src/index.js";

const EXEC_BASE = "/api/v1/namespaces/x/pods/p/exec?";
const execEvent = (requestURI: string, n = 0): AuditEvent =>
  AuditEventSchema.parse({
    ...TEST_EVENT_DEFAULTS,
    auditID: `redos-${n}`,
    verb: "create",
    requestURI,
    objectRef: { resource: "pods", subresource: "exec", namespace: "x", name: "p" },
    responseStatus: { code: 101 },
  });

/** Mean time per event over `events`, after a warm-up on the first few (JIT), in ms. */
function msPerEvent(evaluate: (e: AuditEvent) => unknown, events: AuditEvent[]): number {
  for (const e of events.slice(0, 3)) evaluate(e);
  const t0 = performance.now();
  for (const e of events) evaluate(e);
  return (performance.now() - t0) / events.length;
}

describe("rule regexes run in linear time", () => {
  const compilerRule = loadSigmaRules([SHIPPED_SIGMA_DIR]).find((r) => r.source === "exec-compiler-in-container.yml");

  it("the Sigma ReDoS probe (a 128 KB command= URI) costs under 5 ms per event", () => {
    expect(compilerRule).toBeDefined();
    const rule = compilerRule as NonNullable<typeof compilerRule>;
    // `command=[^&]*(gcc|…)(&|$)` backtracking engines retry `[^&]*` from every `command=`: quadratic, seconds per
    // event on the old engine (RegExp). 16384 × "command=" is 128 KiB.
    const uri = EXEC_BASE + "command=".repeat(16384);
    expect(uri.length).toBeGreaterThan(128 * 1024);
    const events = Array.from({ length: 20 }, (_, i) => execEvent(uri, i));
    expect(rule.matches(events[0] as AuditEvent)).toBe(false);
    expect(msPerEvent(rule.matches, events)).toBeLessThan(5);
  });

  it("padding does not hide a compiler: the rule still fires before, after and between 128 KB of filler", () => {
    const rule = compilerRule as NonNullable<typeof compilerRule>;
    const pad = "a".repeat(128 * 1024);
    for (const uri of [
      `${EXEC_BASE}command=${pad}&command=gcc`,
      `${EXEC_BASE}command=gcc&command=${pad}`,
      `${EXEC_BASE}command=${pad}&command=clang&command=${pad}`,
    ])
      expect(rule.matches(execEvent(uri)), uri.slice(-40)).toBe(true);
  });

  it("the whole pack (native and Sigma) judges a hostile 128 KB exec in milliseconds", () => {
    const detector = new Detector([...loadRules(), ...loadSigmaRules([SHIPPED_SIGMA_DIR])]);
    // Tokens the shipped exec regexes look for, none completing a match, to make a backtracking engine retry a lot.
    const filler = encodeURIComponent("sh -i nc -x socat curl wget | base64 apt-get pip grep /dev/tcp/ ".repeat(2200)).slice(0, 128 * 1024);
    const events = Array.from({ length: 20 }, (_, i) => execEvent(`${EXEC_BASE}command=sh&command=-c&command=${filler}`, i));
    // ~30 ms here, 1.5 s on RegExp; the bound is loose for a busy 2-core CI machine: tens of ms, not seconds.
    expect(msPerEvent((e) => detector.evaluate(e), events)).toBeLessThan(250);
  });

  it("caps the input: a value over the cap is matched on its head and its tail, at bounded cost", () => {
    const matches = compileRegex("evil\\d+$");
    const huge = "x".repeat(4 * REGEX_INPUT_CAP);
    expect(matches(`${huge}evil42`)).toBe(true);
    expect(compileRegex("^evil")(`evil${huge}`)).toBe(true);
    expect(matches(huge)).toBe(false);
    const t0 = performance.now();
    for (let i = 0; i < 5; i++) matches(huge);
    expect((performance.now() - t0) / 5).toBeLessThan(100);
  });
});

describe("patterns RE2 cannot run are load errors", () => {
  const ruleYaml = (id: string, regex: string) =>
    `id: ${id}\nname: N\ndescription: d\nseverity: low\nthreat: { tactics: [TA0007] }\n` +
    `condition: { field: requestURI, regex: '${regex}' }\ntests: { fire: [{}], quiet: [{}] }\n`;
  const loadError = (load: () => unknown): Error => {
    try {
      load();
    } catch (e) {
      return e as Error;
    }
    throw new Error("loaded without error");
  };

  it("names the file and the rule for lookaround and backreferences", () => {
    const dir = mkdtempSync(join(tmpdir(), "rules-"));
    writeFileSync(join(dir, "lookahead.yaml"), ruleYaml("site.lookahead", "^(?!/healthz)"));
    writeFileSync(join(dir, "backref.yaml"), ruleYaml("site.backref", "(a+)\\1"));
    const error = loadError(() => loadRules([SHIPPED_RULES_DIR, dir]));
    expect(error).toBeInstanceOf(RuleLoadError);
    expect(error.message).toMatch(new RegExp(`${join(dir, "lookahead.yaml")}: rule site\\.lookahead: .*not RE2 syntax.*\\(\\?!`));
    expect(error.message).toMatch(new RegExp(`${join(dir, "backref.yaml")}: rule site\\.backref: .*not RE2 syntax.*\\\\1`));
  });

  it("names the library file and the macro, even when no rule uses it", () => {
    const dir = mkdtempSync(join(tmpdir(), "rules-"));
    writeFileSync(join(dir, "lib.yaml"), "macros:\n  not_probe: { field: requestURI, regex: '(?<!x)/healthz' }\n");
    const error = loadError(() => loadRules([SHIPPED_RULES_DIR, dir]));
    expect(error).toBeInstanceOf(RuleLoadError);
    expect(error.message).toContain(`${join(dir, "lib.yaml")}: macro not_probe: regex "(?<!x)/healthz" is not RE2 syntax`);
  });

  it("names the Sigma file and the rule", () => {
    const dir = mkdtempSync(join(tmpdir(), "sigma-"));
    writeFileSync(
      join(dir, "bad-re.yml"),
      "title: Lookahead\nid: 11111111-2222-3333-4444-555555555555\nlogsource: { product: kubernetes, service: audit }\n" +
        "detection:\n  sel:\n    requestURI|re: 'command=(?=.*gcc)'\n  condition: sel\n",
    );
    const error = loadError(() => loadSigmaRules([dir]));
    expect(error).toBeInstanceOf(SigmaLoadError);
    expect(error.message).toContain(
      `${join(dir, "bad-re.yml")}: rule sigma.11111111-2222-3333-4444-555555555555 (Lookahead): regex "command=(?=.*gcc)" is not RE2 syntax`,
    );
  });
});

describe("regex and glob semantics", () => {
  it("reads \\uXXXX as JavaScript does, and escapes stay escapes", () => {
    expect(compileRegex("caf\\u00e9")("café")).toBe(true);
    expect(compileRegex("\\u{1F600}")("😀")).toBe(true);
    expect(compileRegex("\\\\u0041")("\\u0041")).toBe(true);
    expect(compileRegex("GCC", true)("gcc")).toBe(true);
  });

  it("globs match as the anchored regexes they used to be (plus newlines), without backtracking", () => {
    const old = (glob: string, flags: string) =>
      new RegExp(
        `^${glob
          .replace(/[.+^${}()|[\]\\]/g, "\\$&")
          .replace(/\*/g, "[^]*")
          .replace(/\?/g, "[^]")}$`,
        flags,
      );
    const globs = ["", "*", "a*", "*a", "a*b", "*a*", "a*b*c", "a**b", "ab*ba", "?", "a?c", "*.io/*", "x.y", "A*"];
    const values = ["", "a", "b", "ab", "aba", "abba", "abc", "aXbYc", "acb", "abab", "x.io/y", "xy", "x.y", "A", "aZ", "a\nb"];
    for (const g of globs)
      for (const v of values)
        for (const ignoreCase of [false, true])
          expect(compileGlob(g, ignoreCase)(v), `${g} ~ ${JSON.stringify(v)}`).toBe(old(g, ignoreCase ? "i" : "").test(v));
    // Many stars over a long value that almost matches: a greedy search per piece, no retry.
    const t0 = performance.now();
    expect(compileGlob("*a*a*a*a*a*a*a*a*b")("a".repeat(200_000))).toBe(false);
    expect(performance.now() - t0).toBeLessThan(50);
  });

  it("`every` holds when no value fails: a mirror pod with one foreign image is not the control plane", () => {
    const rule = loadRules().find((r) => r.definition.id === "workload.host_network");
    const mirror = rule?.definition.tests.quiet.find((e) => JSON.stringify(e).includes("config.mirror")) as Record<string, unknown>;
    expect(mirror).toBeDefined();
    const event = (images: string[]) =>
      AuditEventSchema.parse({
        ...TEST_EVENT_DEFAULTS,
        ...mirror,
        auditID: `mirror-${images.join(",")}`,
        requestObject: {
          ...(mirror.requestObject as object),
          spec: {
            ...(mirror.requestObject as { spec: object }).spec,
            containers: images.map((image, i) => ({ name: `c${i}`, image })),
          },
        },
      });
    const fires = (images: string[]) => new Detector([rule as NonNullable<typeof rule>]).evaluate(event(images)).length > 0;
    expect(fires(["registry.k8s.io/etcd:3.5.15-0"])).toBe(false);
    expect(fires(["registry.k8s.io/etcd:3.5.15-0", "k8s.gcr.io/kube-apiserver@sha256:00"])).toBe(false);
    expect(fires(["registry.k8s.io/etcd:3.5.15-0", "evil.example/etcd:1"])).toBe(true);
    expect(fires(["registry.k8s.io/etcd-evil:1"])).toBe(true);
  });
});
