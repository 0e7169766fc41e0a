import { AuditEventSchema, REDACTED_ANNOTATION, redactEvent, redactValue } from "@k8s-audit/core";
import { Detector } from "@k8s-audit/detector";
import { buildAlert, loadDetection, SHIPPED_SIGMA_DIR } from "@k8s-audit/rules";
import { findMarkers, plantedCorpus } from "@k8s-audit/testkit";
import { describe, expect, it } from "vitest";

/**
 * The planted-secret corpus through the one redactor, without engines: no marker survives redaction, the events stay
 * valid (and the dead letters invalid), and the rules that fired on them still fire. test/e2e/planted-secrets.test.ts
 * runs the same corpus through the deployed pipeline and replay and scans everything they write.
 */
describe("planted-secret corpus, redactor alone", () => {
  const corpus = plantedCorpus();
  const pack = loadDetection({ sigmaDirs: [SHIPPED_SIGMA_DIR] });

  it("has at least 50 cases in every category the redaction model covers", () => {
    expect(corpus.length).toBeGreaterThanOrEqual(50);
    const categories = new Set(corpus.map((c) => c.category));
    for (const c of [
      "secret",
      "table",
      "last-applied",
      "json-patch",
      "merge-patch",
      "string-body",
      "custom-resource",
      "token",
      "env",
      "pem",
      "query",
      "exec",
      "message",
      "dead-letter",
    ])
      expect(categories, c).toContain(c);
    // Every marker is planted exactly where the case says: the raw corpus contains each one.
    for (const c of corpus) expect(findMarkers(JSON.stringify(c.item), [c]).length, c.name).toBeGreaterThan(0);
  });

  it.each(plantedCorpus().map((c) => [c.id, c.name, c] as const))("case %i: %s — no marker survives", (_id, _name, c) => {
    // What the ingest runs on every item: a bare string cannot be changed in place, so its redacted copy is kept.
    const { value: item, paths } = redactValue(structuredClone(c.item));
    expect(findMarkers(JSON.stringify(item), [c])).toEqual([]);
    expect(paths.length).toBeGreaterThan(0);
    if (typeof item === "object" && item !== null && !Array.isArray(item))
      expect(((item as Record<string, unknown>).annotations as Record<string, string>)[REDACTED_ANNOTATION]).toBeTruthy();
    expect(AuditEventSchema.safeParse(item).success).toBe(c.valid);
  });

  it("the rules that fire on the planted events still fire once they are redacted", () => {
    const missing: string[] = [];
    for (const c of corpus.filter((x) => x.alerts)) {
      const item = structuredClone(c.item) as Record<string, unknown>;
      redactEvent(item);
      const detector = new Detector(pack.rules, { stormWindowMs: 0 });
      const fired = detector.evaluate(AuditEventSchema.parse(item)).map((a) => a.rule.id);
      for (const rule of c.alerts ?? [])
        if (!fired.includes(rule)) missing.push(`case ${c.id} (${c.name}): ${rule} did not fire (${fired.join(", ")})`);
    }
    expect(missing).toEqual([]);
  });

  it("alerts built from unredacted events carry no exec or URL credential (the alert builder scrubs on its own)", () => {
    const leaks: string[] = [];
    for (const c of corpus.filter((x) => x.valid && x.category === "exec")) {
      const event = AuditEventSchema.parse(structuredClone(c.item));
      const rule = pack.rules.find((r) => r.definition.id === "workload.exec_into_pod");
      if (!rule) throw new Error("workload.exec_into_pod is not in the pack");
      leaks.push(...findMarkers(JSON.stringify(buildAlert(rule, event)), [c]));
    }
    expect(leaks).toEqual([]);
  });
});
