import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import type { Alert, AuditEvent } from "@k8s-audit/core";
import { alertNames, type EvasionCase, evasionCases } from "@k8s-audit/detector";
import { loadDetection } from "@k8s-audit/rules";
import { CLI } from "@k8s-audit/testkit";
import { afterAll, describe, expect, inject, it } from "vitest";
import { deployBehindIngest } from "../support/deployment.js";
import { postJson } from "../support/ingest.js";

/**
 * The evasion suite (packages/detector/src/evasion.ts) end to end: every variant posted as an apiserver would to the
 * real ingest (which validates, truncates oversize bodies, stamps the cluster and produces to the real Kafka), judged
 * by three detector instances and the window stage; and the same events replayed from an archive file with
 * `k8s-audit replay`. Each variant must raise its alert on both paths, and both paths must give the same alert ids.
 */
const CLUSTER = "test";
const pack = loadDetection();
const cases = evasionCases(pack.rules).filter((c) => !c.routine);

function missing(alerts: Alert[], all: readonly EvasionCase[]): string[] {
  return all
    .filter((c) => {
      const last = c.events[c.events.length - 1] as AuditEvent;
      return !alerts.some((a) => alertNames(a, c.expect, last));
    })
    .map((c) => `${c.rule}: ${c.variant}`);
}

describe("evasion suite on the live path and in replay", () => {
  const brokers = inject("kafkaBrokers");
  let pipeline: Awaited<ReturnType<typeof deployBehindIngest>> | undefined;
  afterAll(async () => {
    await pipeline?.stop();
  });

  it("every variant fires through ingest → Kafka → 3 detectors and through replay, with the same alert ids", async () => {
    expect(cases.length).toBeGreaterThan(300);

    // Offline: the archive an investigator would have (no cluster field on the archive variant's event).
    const dir = mkdtempSync(join(tmpdir(), "k8s-audit-evasion-"));
    const archive = join(dir, "audit.log");
    writeFileSync(archive, `${cases.flatMap((c) => c.events.map((e) => JSON.stringify(e))).join("\n")}\n`);
    // As an investigator runs it: `k8s-audit replay`, the cluster named for the events that carry none.
    const out = join(dir, "alerts.ndjson");
    await promisify(execFile)(process.execPath, [CLI, "replay", archive, "--cluster", CLUSTER, "--out", out, "--no-progress"], {
      env: { ...process.env, LOG_LEVEL: "error" },
      maxBuffer: 64 * 1024 * 1024,
    });
    const replayed = readFileSync(out, "utf8")
      .split("\n")
      .filter(Boolean)
      .map((line) => JSON.parse(line) as Alert);
    expect(missing(replayed, cases)).toEqual([]);

    // Live: each case as one EventList, as the apiserver batches them, to the cluster's webhook path.
    pipeline = await deployBehindIngest(brokers, 3, pack, CLUSTER);
    const { deployment, url } = pipeline;
    const queue = [...cases];
    const post = async () => {
      for (let c = queue.shift(); c; c = queue.shift()) {
        const items = c.events.map(({ cluster: _cluster, ...e }) => e);
        const res = await postJson(url, { kind: "EventList", apiVersion: "audit.k8s.io/v1", metadata: {}, items });
        expect(res.status, `${c.rule}: ${c.variant}: ${JSON.stringify(res.body)}`).toBe(200);
      }
    };
    await Promise.all(Array.from({ length: 6 }, post));

    const replayedIds = new Set(replayed.map((a) => a.event.id));
    const live = await deployment.alerts((seen) => {
      const ids = new Set(seen.map((a) => a.event.id));
      return [...replayedIds].every((id) => ids.has(id));
    });
    expect(missing(live, cases)).toEqual([]);
    const liveIds = new Set(live.map((a) => a.event.id));
    const only = (a: Set<string>, b: Set<string>, alerts: Alert[]) =>
      alerts.filter((x) => a.has(x.event.id) && !b.has(x.event.id)).map((x) => `${x.rule.id} ${x.message.slice(0, 120)}`);
    expect({ onlyLive: only(liveIds, replayedIds, live), onlyReplayed: only(replayedIds, liveIds, replayed) }).toEqual({
      onlyLive: [],
      onlyReplayed: [],
    });
  }, 600_000);
});
