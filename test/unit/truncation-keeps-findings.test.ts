import { type AuditEvent, AuditEventSchema, createLogger, MemoryBus } from "@k8s-audit/core";
import { Detector, TEST_EVENT_DEFAULTS } from "@k8s-audit/detector";
import { createIngestMetrics, Ingestor, TRUNCATED_ANNOTATION } from "@k8s-audit/ingest";
import { type CompiledRule, loadRules, loadSigmaRules, SHIPPED_SIGMA_DIR } from "@k8s-audit/rules";
import { describe, expect, it } from "vitest";

/**
 * Truncation never hides a finding: every shipped rule's own fire and quiet cases that read a request or response body
 * are padded past the event limit in the ways an attacker (or a big object) would, sent through the ingest, and judged
 * again. A rule that fired must still fire; a quiet case must stay quiet.
 */
const LIMIT = 64 * 1024;
const logger = createLogger({ level: "silent" });
/** The rules' own test defaults, without the cluster: the ingest stamps it. */
const { cluster: _cluster, ...DEFAULTS } = TEST_EVENT_DEFAULTS;

type Body = Record<string, unknown> | unknown[];
const pad = (n: number) => "x".repeat(n);
const withMeta = (body: Record<string, unknown>, extra: (meta: Record<string, unknown>) => void) => {
  const meta = { ...((body.metadata as Record<string, unknown> | undefined) ?? {}) };
  extra(meta);
  return { ...body, metadata: meta };
};
const annotations = (n: number, size: number) =>
  Object.fromEntries(Array.from({ length: n }, (_, i) => [`pad.example.com/a${i}`, pad(size)]));

/** Ways to push a body past LIMIT without touching what it says. */
const PADDINGS: Record<string, (body: Record<string, unknown>) => Record<string, unknown>> = {
  "one 256 KB annotation": (b) => withMeta(b, (m) => (m.annotations = { ...(m.annotations as object), ...annotations(1, 256 * 1024) })),
  "managedFields, last-applied and status": (b) => ({
    ...withMeta(b, (m) => {
      m.managedFields = Array.from({ length: 200 }, (_, i) => ({ manager: `m${i}`, fieldsV1: { pad: pad(1000) } }));
      m.annotations = { ...(m.annotations as object), "kubectl.kubernetes.io/last-applied-configuration": pad(60_000) };
    }),
    ...("status" in b ? {} : { status: { conditions: Array.from({ length: 100 }, () => ({ message: pad(1000) })) } }),
  }),
  "150 annotations of 1.5 KB": (b) => withMeta(b, (m) => (m.annotations = { ...(m.annotations as object), ...annotations(150, 1500) })),
  "2,000 annotations of 100 B": (b) => withMeta(b, (m) => (m.annotations = { ...(m.annotations as object), ...annotations(2000, 100) })),
  "an unknown spec field of 100 strings of 3 KB": (b) => ({
    ...b,
    spec: { ...((b.spec as object | undefined) ?? {}), padding: Array.from({ length: 100 }, () => pad(3000)) },
  }),
};

function padBody(body: Body, how: string): Body {
  if (Array.isArray(body)) return [...body, { op: "add", path: "/metadata/annotations/pad", value: pad(256 * 1024) }];
  return (PADDINGS[how] as (b: Record<string, unknown>) => Record<string, unknown>)(structuredClone(body));
}

async function throughIngest(item: Record<string, unknown>): Promise<{ event: AuditEvent; bytes: number }> {
  const bus = new MemoryBus();
  const ingestor = new Ingestor({
    bus,
    topics: { events: "e", alerts: "a", deadLetter: "d" },
    logger,
    metrics: createIngestMetrics(),
    maxEventBytes: LIMIT,
  });
  const outcome = await ingestor.ingest([item], "test");
  expect(outcome.status).toBe(200);
  const [stored] = bus.read("e");
  const value = stored?.value ?? "";
  return { event: AuditEventSchema.parse(JSON.parse(value)), bytes: Buffer.byteLength(value) };
}

const fires = (rule: CompiledRule, event: AuditEvent) => new Detector([rule], { stormWindowMs: 0 }).evaluate(event).length > 0;

const rules = [...loadRules(), ...loadSigmaRules([SHIPPED_SIGMA_DIR])];
const cases = rules.flatMap((rule) =>
  (["fire", "quiet"] as const).flatMap((kind) =>
    rule.definition.tests[kind].flatMap((c, i) => {
      const body = (c as { requestObject?: unknown }).requestObject;
      if (body === null || typeof body !== "object") return [];
      return [{ rule, label: `${rule.definition.id} ${kind}[${i}]`, item: c as Record<string, unknown>, body: body as Body }];
    }),
  ),
);

/** Whether a case fires when it goes through the ingest unpadded (redaction included): what padding must not change. */
const baselines = new Map<string, boolean>();
async function baseline(rule: CompiledRule, label: string, base: Record<string, unknown>): Promise<boolean> {
  let fired = baselines.get(label);
  if (fired === undefined) {
    fired = fires(rule, (await throughIngest(base)).event);
    baselines.set(label, fired);
  }
  return fired;
}

describe("truncation never hides a finding (the shipped rules' own cases, padded past the limit)", () => {
  it("has body-reading cases to check, fire and quiet", async () => {
    expect(cases.length).toBeGreaterThan(40);
    let firing = 0;
    for (const { rule, label, item } of cases) if (await baseline(rule, label, { ...DEFAULTS, auditID: `t-${label}`, ...item })) firing++;
    expect(firing).toBeGreaterThan(20);
    expect(cases.length - firing).toBeGreaterThan(20);
  }, 60_000);

  it.each(Object.keys(PADDINGS))(
    "padding: %s; also as request and response",
    async (how) => {
      const failures: string[] = [];
      for (const { rule, label, item, body } of cases) {
        const base = { ...DEFAULTS, auditID: `t-${label}`, ...item };
        const expected = await baseline(rule, label, base);
        const padded = padBody(body, how);
        const variants = {
          request: { ...base, requestObject: padded },
          "request and response": { ...base, requestObject: padded, responseObject: structuredClone(padded) },
        };
        for (const [variant, event] of Object.entries(variants)) {
          const { event: stored, bytes } = await throughIngest(event);
          expect(bytes, label).toBeLessThanOrEqual(LIMIT);
          expect(stored.annotations?.[TRUNCATED_ANNOTATION], label).toBe("true");
          if (fires(rule, stored) !== expected) failures.push(`${label} (${variant}): expected ${expected ? "an alert" : "none"}`);
        }
      }
      expect(failures).toEqual([]);
    },
    60_000,
  );
});
