import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import type { Alert, AuditEvent } from "@k8s-audit/core";
import { Detector } from "@k8s-audit/detector";
import { loadRules } from "@k8s-audit/rules";
import { auditLogEvent } from "@k8s-audit/testkit";
import { describe, expect, it } from "vitest";
import { parseTime, replay, resolveInputs } from "../src/index.js";

const rules = loadRules();

/**
 * Events written by this project: a few people and controllers, one of them creating a cluster-admin binding. Audit log
 * lines a minute apart, stamped by stageTimestamp alone (no received time), with no user agent or annotations.
 */
function event(i: number, overrides: Record<string, unknown> = {}) {
  return auditLogEvent({
    level: "Request",
    auditID: `evt-${i}`,
    requestURI: `/api/v1/namespaces/ns-${i % 3}/pods`,
    verb: i % 2 ? "create" : "list",
    user: { username: i % 4 === 0 ? "bob" : "alice", groups: ["system:authenticated"] },
    sourceIPs: ["198.51.100.4"],
    userAgent: undefined,
    objectRef: { resource: "pods", namespace: `ns-${i % 3}`, apiVersion: "v1" },
    responseStatus: { code: 200 },
    requestReceivedTimestamp: undefined,
    stageTimestamp: new Date(Date.UTC(2026, 2, 1, 10, 0, 0) + i * 60_000).toISOString(),
    annotations: undefined,
    ...overrides,
  });
}
const binding = (i: number) =>
  event(i, {
    verb: "create",
    requestURI: "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
    objectRef: { resource: "clusterrolebindings", name: `b-${i}`, apiGroup: "rbac.authorization.k8s.io", apiVersion: "v1" },
    requestObject: { roleRef: { name: "cluster-admin" }, subjects: [{ kind: "User", name: "x" }] },
    responseStatus: { code: 201 },
  });

const EVENTS = Array.from({ length: 30 }, (_, i) => (i % 10 === 5 ? binding(i) : event(i)));
const jsonl = (items: unknown[]) => `${items.map((e) => JSON.stringify(e)).join("\n")}\n`;

async function run(inputs: string[], extra: Parameters<typeof replay>[0] extends infer O ? Partial<O> : never = {}) {
  const seen: AuditEvent[] = [];
  const alerts: Alert[] = [];
  const summary = await replay({
    inputs,
    detector: new Detector(rules),
    defaultCluster: "prod",
    onEvent: (e) => void seen.push(e),
    onAlerts: (a) => void alerts.push(...a),
    ...extra,
  });
  return { summary, ids: seen.map((e) => e.auditID), alertIds: alerts.map((a) => a.event.id).sort() };
}

describe("replay", () => {
  it("replays a gz-rotated set exactly like the same events uncompressed, backups oldest first, then the live file", async () => {
    const dir = mkdtempSync(join(tmpdir(), "replay-"));
    writeFileSync(join(dir, "audit-2026-03-01T10-10-00.000.log.gz"), gzipSync(jsonl(EVENTS.slice(10, 20))));
    writeFileSync(join(dir, "audit-2026-03-01T10-00-00.000.log.gz"), gzipSync(jsonl(EVENTS.slice(0, 10))));
    writeFileSync(join(dir, "audit.log"), jsonl(EVENTS.slice(20)));
    const plain = mkdtempSync(join(tmpdir(), "replay-"));
    writeFileSync(join(plain, "all.log"), jsonl(EVENTS));

    expect((await resolveInputs([dir])).map((f) => f.path.split("/").pop())).toEqual([
      "audit-2026-03-01T10-00-00.000.log.gz",
      "audit-2026-03-01T10-10-00.000.log.gz",
      "audit.log",
    ]);
    const rotated = await run([dir]);
    const uncompressed = await run([join(plain, "all.log")]);
    expect(rotated.ids).toEqual(EVENTS.map((e) => e.auditID));
    expect(rotated.ids).toEqual(uncompressed.ids);
    expect(rotated.alertIds).toEqual(uncompressed.alertIds);
    expect(rotated.alertIds.length).toBeGreaterThan(0);
  });

  it("reads EventList files, pretty-printed single events and JSON arrays", async () => {
    const dir = mkdtempSync(join(tmpdir(), "replay-"));
    writeFileSync(
      join(dir, "list.json"),
      JSON.stringify({ kind: "EventList", apiVersion: "audit.k8s.io/v1", items: EVENTS.slice(0, 3) }, null, 2),
    );
    writeFileSync(join(dir, "one.json"), JSON.stringify(EVENTS[3], null, 2));
    writeFileSync(join(dir, "array.json"), JSON.stringify(EVENTS.slice(4, 6)));
    const { ids, summary } = await run([dir]);
    expect(ids.sort()).toEqual(["evt-0", "evt-1", "evt-2", "evt-3", "evt-4", "evt-5"]);
    expect(summary.malformed).toBe(0);
  });

  it("reads the EKS CloudWatch, AKS diagnostic and GKE Cloud Logging formats", async () => {
    const dir = mkdtempSync(join(tmpdir(), "replay-"));
    const e = binding(7);
    writeFileSync(
      join(dir, "eks.jsonl"),
      `${JSON.stringify({ timestamp: 1772359200000, message: JSON.stringify(e), logStreamName: "kube-apiserver-audit-abc" })}\n`,
    );
    writeFileSync(
      join(dir, "aks.json"),
      JSON.stringify({
        records: [
          {
            time: "2026-03-01T10:07:00Z",
            category: "kube-audit",
            properties: { log: JSON.stringify({ ...e, auditID: "aks-1" }), pod: "kube-apiserver-x" },
          },
        ],
      }),
    );
    writeFileSync(
      join(dir, "gke.jsonl"),
      `${JSON.stringify({
        insertId: "gke-insert-1",
        logName: "projects/p/logs/cloudaudit.googleapis.com%2Factivity",
        operation: { id: "gke-op-1", producer: "k8s.io" },
        protoPayload: {
          "@type": "type.googleapis.com/google.cloud.audit.AuditLog",
          authenticationInfo: { principalEmail: "mallory@example.com" },
          authorizationInfo: [{ granted: true, permission: "io.k8s.authorization.rbac.v1.clusterrolebindings.create" }],
          methodName: "io.k8s.authorization.rbac.v1.clusterrolebindings.create",
          resourceName: "rbac.authorization.k8s.io/v1/clusterrolebindings/evil",
          requestMetadata: { callerIp: "203.0.113.9", callerSuppliedUserAgent: "kubectl/v1.31.0" },
          request: { roleRef: { name: "cluster-admin" }, subjects: [{ kind: "User", name: "mallory@example.com" }] },
          status: {},
        },
        resource: { type: "k8s_cluster", labels: { cluster_name: "gke-prod", location: "europe-west1" } },
        timestamp: "2026-03-01T10:08:00.123456Z",
      })}\n`,
    );
    const seen: AuditEvent[] = [];
    const alerts: Alert[] = [];
    await replay({
      inputs: [dir],
      detector: new Detector(rules),
      onEvent: (x) => void seen.push(x),
      onAlerts: (a) => void alerts.push(...a),
    });
    const gke = seen.find((x) => x.auditID === "gke-op-1");
    expect(seen.map((x) => x.auditID).sort()).toEqual(["aks-1", "evt-7", "gke-op-1"]);
    expect(gke).toMatchObject({
      verb: "create",
      user: { username: "mallory@example.com" },
      sourceIPs: ["203.0.113.9"],
      objectRef: { resource: "clusterrolebindings", name: "evil", apiGroup: "rbac.authorization.k8s.io" },
      responseStatus: { code: 201 },
      cluster: "gke-prod",
    });
    // the same detection runs on all three (two of them by one user fold into a storm summary, which lists both)
    const flagged = alerts.filter((a) => a.rule.id === "rbac.binding_to_cluster_admin").flatMap((a) => a.kubernetes.audit.auditID);
    expect([...new Set(flagged)].sort()).toEqual(["aks-1", "evt-7", "gke-op-1"]);
  });

  it("applies every filter", async () => {
    const dir = mkdtempSync(join(tmpdir(), "replay-"));
    writeFileSync(join(dir, "audit.log"), jsonl(EVENTS));
    const ids = async (filters: Record<string, string>, cluster = "prod") => (await run([dir], { filters, defaultCluster: cluster })).ids;
    expect(await ids({ from: "2026-03-01T10:25:00Z" })).toEqual(["evt-25", "evt-26", "evt-27", "evt-28", "evt-29"]);
    expect(await ids({ to: "2026-03-01T10:02:00Z" })).toEqual(["evt-0", "evt-1", "evt-2"]);
    expect(await ids({ user: "bob", to: "2026-03-01T10:09:00Z" })).toEqual(["evt-0", "evt-4", "evt-8"]);
    expect(await ids({ namespace: "ns-1", to: "2026-03-01T10:09:00Z" })).toEqual(["evt-1", "evt-4", "evt-7"]);
    expect(await ids({ verb: "list", to: "2026-03-01T10:05:00Z" })).toEqual(["evt-0", "evt-2", "evt-4"]);
    expect(await ids({ resource: "clusterrolebindings" })).toEqual(["evt-5", "evt-15", "evt-25"]);
    expect(await ids({ cluster: "prod" })).toHaveLength(30);
    expect(await ids({ cluster: "staging" })).toHaveLength(0);
    expect(parseTime("-2h", Date.UTC(2026, 0, 1, 12))).toBe(Date.UTC(2026, 0, 1, 10));
    expect(() => parseTime("yesterday")).toThrow(/not a time/);
  });

  it("reports a corrupted line with file:line and goes on with the rest", async () => {
    const dir = mkdtempSync(join(tmpdir(), "replay-"));
    const file = join(dir, "audit.log");
    writeFileSync(
      file,
      `${JSON.stringify(EVENTS[0])}\n{"kind":"Event","auditID":"cut-off-he\n${JSON.stringify({ hello: "world" })}\n${JSON.stringify(EVENTS[1])}\n`,
    );
    const { ids, summary } = await run([file]);
    expect(ids).toEqual(["evt-0", "evt-1"]);
    expect(summary.malformed).toBe(2);
    expect(summary.malformedSamples[0]).toMatchObject({ file, line: 2 });
    expect(summary.malformedSamples[0]?.reason).toMatch(/^malformed JSON/);
    expect(summary.malformedSamples[1]).toMatchObject({ file, line: 3 });
    expect(summary.malformedSamples[1]?.reason).toMatch(/^not an audit event/);
  });

  it("handles lines far beyond 64 KiB", async () => {
    const dir = mkdtempSync(join(tmpdir(), "replay-"));
    const big = event(0, { requestObject: { blob: "x".repeat(3 * 1024 * 1024) } });
    writeFileSync(join(dir, "audit.log"), jsonl([big, EVENTS[1]]));
    expect((await run([dir])).ids).toEqual(["evt-0", "evt-1"]);
  });
});
