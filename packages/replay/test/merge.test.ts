import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import type { Alert, AuditEvent } from "@k8s-audit/core";
import { Detector } from "@k8s-audit/detector";
import { loadDetection } from "@k8s-audit/rules";
import { apiserverTime, auditLogEvent } from "@k8s-audit/testkit";
import { afterAll, describe, expect, it } from "vitest";
import { groupByLog, type ReplayOptions, replay, resolveInputs } from "../src/index.js";

const pack = loadDetection();
const T0 = Date.UTC(2026, 2, 1, 10, 0, 0);
/** Well after every event here, so none of them counts as stamped in the future. */
const NOW = Date.UTC(2026, 2, 2);

type Json = Record<string, unknown>;
let nextId = 0;
/** An audit log line at `atMs`: alice reading a configmap, numbered, with no user agent or annotations. */
function event(atMs: number, overrides: Json = {}): Json {
  const id = nextId++;
  return auditLogEvent({
    level: "Metadata",
    auditID: `evt-${String(id).padStart(4, "0")}`,
    requestURI: "/api/v1/namespaces/shop/configmaps/settings",
    verb: "get",
    user: { username: "alice", groups: ["system:authenticated"] },
    sourceIPs: ["198.51.100.4"],
    userAgent: undefined,
    objectRef: { resource: "configmaps", namespace: "shop", name: "settings", apiVersion: "v1" },
    responseStatus: { code: 200 },
    requestReceivedTimestamp: apiserverTime(atMs - 2, id % 1000),
    stageTimestamp: apiserverTime(atMs, id % 1000),
    annotations: undefined,
    ...overrides,
  });
}

/** Refused as unauthenticated: the probe for auth.unauthenticated_burst (20 in a minute from one address). */
const unauthenticated = (atMs: number) => event(atMs, { user: {}, sourceIPs: ["203.0.113.66"], responseStatus: { code: 401 } });
/** Forbidden: the probe for auth.forbidden_burst (20 in a minute by one principal). */
const forbidden = (atMs: number) =>
  event(atMs, {
    user: { username: "mallory", groups: ["system:authenticated"] },
    requestURI: "/api/v1/namespaces/prod/secrets",
    verb: "list",
    objectRef: { resource: "secrets", namespace: "prod", apiVersion: "v1" },
    responseStatus: { code: 403 },
  });
/** A cluster-admin binding: a per-event rule whose repeats by one principal fold into per-minute storm summaries. */
const binding = (atMs: number) =>
  event(atMs, {
    user: { username: "eve", groups: ["system:authenticated"] },
    verb: "create",
    requestURI: "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
    objectRef: { resource: "clusterrolebindings", name: `b-${atMs}`, apiGroup: "rbac.authorization.k8s.io", apiVersion: "v1" },
    requestObject: { roleRef: { name: "cluster-admin" }, subjects: [{ kind: "User", name: "eve" }] },
    responseStatus: { code: 201 },
  });

const s = (seconds: number) => T0 + seconds * 1000;
/** Seven minutes of one cluster: background reads, two bursts, and binding storms across several minutes. */
const ARCHIVE: Json[] = [
  ...Array.from({ length: 60 }, (_, i) => event(s(i * 7))),
  ...Array.from({ length: 25 }, (_, i) => unauthenticated(s(65 + i * 1.5))),
  ...Array.from({ length: 22 }, (_, i) => forbidden(s(182 + i * 2))),
  ...[10, 30, 50, 130, 140, 270].map((at) => binding(s(at))),
].sort((a, b) => (String(a.stageTimestamp) < String(b.stageTimestamp) ? -1 : 1));

const jsonl = (items: Json[]) => `${items.map((e) => JSON.stringify(e)).join("\n")}\n`;

/** Moves each event at most `within - 1` places (a deterministic shuffle in blocks), as concurrent writers do. */
function shuffleWithin(items: Json[], within: number): Json[] {
  const out = [...items];
  for (let start = 0; start < out.length; start += within) {
    const block = out.slice(start, start + within);
    block.push(block.shift() as Json); // rotate, then swap the ends: every order inside the block changes
    if (block.length > 2) [block[0], block[block.length - 1]] = [block[block.length - 1] as Json, block[0] as Json];
    out.splice(start, block.length, ...block);
  }
  return out;
}

const dealt = (items: Json[], hands: number) => Array.from({ length: hands }, (_, h) => items.filter((_, i) => i % hands === h));

interface Run {
  alerts: string[];
  replayed: string[];
  summary: Awaited<ReturnType<typeof replay>>;
}

/** Offline detection with the full shipped pack, as `k8s-audit replay` runs it. */
async function run(inputs: string[], options: Partial<ReplayOptions> = {}): Promise<Run> {
  const alerts: Alert[] = [];
  const replayed: AuditEvent[] = [];
  const summary = await replay({
    inputs,
    defaultCluster: "prod",
    now: NOW,
    detector: new Detector(pack.rules, { windowRules: pack.windowRules }),
    onEvent: (e) => void replayed.push(e),
    onAlerts: (a) => void alerts.push(...a),
    ...options,
  });
  return {
    // What an investigation keeps: each alert's id and count (storm summaries count their repeats).
    alerts: alerts.map((a) => `${a.event.id} ×${a.event.count ?? 1} ${a.rule.id}`).sort(),
    replayed: replayed.map((e) => e.auditID),
    summary,
  };
}

const folders: string[] = [];
const folder = () => {
  const dir = mkdtempSync(join(tmpdir(), "replay-merge-"));
  folders.push(dir);
  return dir;
};
afterAll(() => {
  for (const dir of folders) rmSync(dir, { recursive: true, force: true });
});

describe("replay merges its inputs by event time", () => {
  const sortedIds = ARCHIVE.map((e) => e.auditID);

  it("gives one sorted file's alerts for three apiserver logs dealt round-robin, each out of order, in any order", async () => {
    const one = folder();
    writeFileSync(join(one, "audit.log"), jsonl(ARCHIVE));
    const expected = await run([join(one, "audit.log")]);
    expect(expected.replayed).toEqual(sortedIds);
    // The probes fire: both bursts, and storms whose counts depend on the order (3 bindings in one minute, 2 in another).
    expect(expected.alerts.some((a) => a.endsWith("auth.unauthenticated_burst"))).toBe(true);
    expect(expected.alerts.some((a) => a.endsWith("auth.forbidden_burst"))).toBe(true);
    const storms = expected.alerts.filter((a) => a.endsWith("rbac.binding_to_cluster_admin")).map((a) => a.split(" ")[1]);
    expect(storms.sort()).toEqual(["×1", "×1", "×1", "×2", "×3"]);

    const hands = dealt(ARCHIVE, 3).map((hand) => shuffleWithin(hand, 4));
    const three = folder();
    const names = ["apiserver-1.log", "apiserver-2.log", "apiserver-3.log"];
    const reversed = folder();
    for (const [i, name] of names.entries()) {
      writeFileSync(join(three, name), jsonl(hands[i] as Json[]));
      // The same logs under each other's names: read in the opposite order.
      writeFileSync(join(reversed, name), jsonl(hands[2 - i] as Json[]));
    }

    for (const inputs of [names.map((n) => join(three, n)), names.map((n) => join(reversed, n)).reverse()]) {
      for (const reorderBuffer of [undefined, 3]) {
        const merged = await run(inputs, { reorderBuffer });
        expect(merged.alerts).toEqual(expected.alerts);
        expect(merged.replayed).toEqual(sortedIds);
        expect(merged.summary.outOfOrder).toBeGreaterThan(0);
        expect(merged.summary.late).toBe(0);
      }
    }
    // Without room to reorder, the logs' own disorder shows, and is counted.
    expect((await run([three], { reorderBuffer: 0 })).summary.late).toBeGreaterThan(0);
  });

  it("replays overlapping exports once: a copy of a request already replayed is dropped and counted", async () => {
    const dir = folder();
    writeFileSync(join(dir, "export-1.log"), jsonl(ARCHIVE.slice(0, 80)));
    // The second export overlaps the first by 40 events.
    writeFileSync(join(dir, "export-2.log"), jsonl(ARCHIVE.slice(40)));
    writeFileSync(join(dir, "whole.log"), jsonl(ARCHIVE));
    const expected = await run([join(dir, "whole.log")]);
    const overlapping = await run([join(dir, "export-1.log"), join(dir, "export-2.log")]);
    expect(overlapping.alerts).toEqual(expected.alerts);
    expect(overlapping.replayed).toEqual(sortedIds);
    expect(overlapping.summary.duplicates).toBe(40);
  });

  it("merges a gzipped rotated backup with its live file and another apiserver's log", async () => {
    const one = folder();
    writeFileSync(join(one, "audit.log"), jsonl(ARCHIVE));
    const expected = await run([one]);

    const [node1, node2] = dealt(ARCHIVE, 2) as [Json[], Json[]];
    const dir = folder();
    mkdirSync(join(dir, "node-1"));
    mkdirSync(join(dir, "node-2"));
    const rotatedAt = node1.findIndex((e) => String(e.stageTimestamp) >= apiserverTime(s(180)));
    writeFileSync(join(dir, "node-1", "audit-2026-03-01T10-03-00.000.log.gz"), gzipSync(jsonl(node1.slice(0, rotatedAt))));
    writeFileSync(join(dir, "node-1", "audit.log"), jsonl(node1.slice(rotatedAt)));
    writeFileSync(join(dir, "node-2", "audit.log"), jsonl(node2));

    // The backup and the live file of node-1 are one log, read one after the other; node-2's log is merged with it.
    expect(groupByLog(await resolveInputs([dir])).map((log) => log.map((f) => f.path.slice(dir.length + 1)))).toEqual([
      ["node-1/audit-2026-03-01T10-03-00.000.log.gz", "node-1/audit.log"],
      ["node-2/audit.log"],
    ]);
    const merged = await run([dir], { reorderBuffer: 2 });
    expect(merged.alerts).toEqual(expected.alerts);
    expect(merged.replayed).toEqual(sortedIds);
    expect(merged.summary).toMatchObject({ files: 3, late: 0, matched: ARCHIVE.length });
  });

  it("holds no more events than the reorder buffer, however large the file", async () => {
    const dir = folder();
    const file = join(dir, "audit.log");
    const n = 200_000;
    // Events 1 ms apart, each moved up to 499 places: shuffled in blocks of 500, with a buffer of 1,000.
    const lines: string[] = [];
    for (let start = 0; start < n; start += 500) {
      const block = Array.from({ length: 500 }, (_, k) => start + ((k * 263) % 500));
      for (const i of block)
        lines.push(
          `{"level":"Metadata","auditID":"e-${i}","stage":"ResponseComplete","requestURI":"/api/v1/pods","verb":"list","user":{"username":"u"},"stageTimestamp":"${apiserverTime(T0 + i)}"}`,
        );
    }
    writeFileSync(file, `${lines.join("\n")}\n`);

    let previous = "";
    let unordered = 0;
    const summary = await replay({
      inputs: [file],
      reorderBuffer: 1000,
      now: NOW,
      onEvent: (e) => {
        const t = e.stageTimestamp as string;
        if (t < previous) unordered++;
        previous = t;
      },
    });
    expect(summary.matched).toBe(n);
    expect(unordered).toBe(0);
    expect(summary.late).toBe(0);
    expect(summary.outOfOrder).toBeGreaterThan(n / 2);
    expect(summary.peakBuffered).toBe(1000);
  }, 60_000);
});

describe("events stamped in the future", () => {
  // Under 50 events: too few for the silence rule, whose gap a far-future event would otherwise open.
  const burst = Array.from({ length: 25 }, (_, i) => unauthenticated(s(65 + i * 1.5)));
  const around = Array.from({ length: 10 }, (_, i) => event(s(i * 20)));
  const archive = [...around, ...burst].sort((a, b) => (String(a.stageTimestamp) < String(b.stageTimestamp) ? -1 : 1));
  const future = event(Date.UTC(2100, 0, 1), { stageTimestamp: "2100-01-01T00:00:00.000000Z" });

  it("are replayed last, counted and reported, and change no alert", async () => {
    const dir = folder();
    const without = join(dir, "without.log");
    const withFuture = join(dir, "with.log");
    writeFileSync(without, jsonl(archive));
    // In the middle of the burst: handed on where it stands, it would close the burst's window half counted.
    const middle = archive.indexOf(burst[12] as Json);
    writeFileSync(withFuture, jsonl([...archive.slice(0, middle), future, ...archive.slice(middle)]));

    const expected = await run([without]);
    const actual = await run([withFuture]);
    expect(expected.alerts.some((a) => a.endsWith("auth.unauthenticated_burst"))).toBe(true);
    expect(actual.alerts).toEqual(expected.alerts);
    expect(actual.replayed).toEqual([...expected.replayed, future.auditID]);
    // However small the reorder buffer: the latest event held is never the one a full buffer gives back.
    expect((await run([withFuture], { reorderBuffer: 1 })).replayed).toEqual(actual.replayed);
    expect(actual.summary).toMatchObject({
      futureEvents: 1,
      futureSamples: [{ file: withFuture, line: middle + 1, time: "2100-01-01T00:00:00.000000Z" }],
      firstEvent: expected.summary.firstEvent,
      lastEvent: expected.summary.lastEvent,
    });
  });

  it("are reported when far ahead of their neighbours in an archive from the past, and change no alert", async () => {
    const dir = folder();
    const without = join(dir, "without.log");
    const withOutlier = join(dir, "with.log");
    writeFileSync(without, jsonl(archive));
    // Three hours ahead of the events around it, and still long before the replay's clock: not "future", an outlier.
    const ahead = event(T0 + 3 * 3600_000, { stageTimestamp: apiserverTime(T0 + 3 * 3600_000) });
    const middle = archive.indexOf(burst[12] as Json);
    writeFileSync(withOutlier, jsonl([...archive.slice(0, middle), ahead, ...archive.slice(middle)]));
    const expected = await run([without]);
    const actual = await run([withOutlier]);
    expect(actual.alerts).toEqual(expected.alerts);
    expect(actual.summary).toMatchObject({
      futureEvents: 0,
      timeOutliers: 1,
      outlierSamples: [{ file: withOutlier, line: middle + 1, time: ahead.stageTimestamp }],
    });
    // A gap in the archive (a quiet night) is not an outlier: the events after it stay ahead.
    const gap = join(dir, "gap.log");
    writeFileSync(gap, jsonl([...archive, ...[0, 1, 2].map((i) => event(T0 + 2 * 3600_000 + i * 1000))]));
    expect((await run([gap])).summary.timeOutliers).toBe(0);
  });

  it("are judged against the wall clock at the start, with maxFutureSkewMs of tolerance", async () => {
    const dir = folder();
    const file = join(dir, "audit.log");
    const events = [event(s(0)), event(s(4 * 60)), event(s(6 * 60))];
    writeFileSync(file, jsonl(events));
    const { summary } = await run([file], { now: T0, maxFutureSkewMs: 5 * 60_000 });
    expect(summary.futureEvents).toBe(1);
    expect(summary.lastEvent).toBe(events[1]?.stageTimestamp);
    expect(summary.futureSamples.map((f) => f.line)).toEqual([3]);
  });
});
