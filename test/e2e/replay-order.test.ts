import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Alert, AuditEvent } from "@k8s-audit/core";
import { Detector } from "@k8s-audit/detector";
import { replay } from "@k8s-audit/replay";
import { loadDetection } from "@k8s-audit/rules";
import { parsedAuditEvent } from "@k8s-audit/testkit";
import { afterAll, describe, expect, inject, it } from "vitest";
import { deployBehindIngest } from "../support/deployment.js";
import { postJson } from "../support/ingest.js";

/**
 * An HA control plane writes one audit log per apiserver. The same events as one time-sorted file, as three files
 * (one per apiserver, each slightly out of order, given in the wrong order), and live through the ingest, Kafka and
 * three detector instances must give identical alert ids and counts: timed rules, storm summaries and per-event
 * alerts. Written for this test.
 */
const CLUSTER = "prod";
const T0 = Date.UTC(2026, 10, 2, 9, 0, 0);
const MINUTE = 60_000;
const pack = loadDetection();

let n = 0;
function request(user: string, at: number, fields: Record<string, unknown> = {}): AuditEvent {
  n++;
  return parsedAuditEvent({
    auditID: `order-${n}`,
    level: "Metadata",
    user: { username: user, groups: ["system:authenticated"] },
    userAgent: `${user}/1.0`,
    sourceIPs: [`10.2.0.${user.length}`],
    requestReceivedTimestamp: new Date(at - 4).toISOString(),
    stageTimestamp: new Date(at).toISOString(),
    ...fields,
  });
}

const every = <T>(count: number, from: number, spanMs: number, make: (at: number, i: number) => T): T[] =>
  Array.from({ length: count }, (_, i) => make(from + Math.floor((i * spanMs) / count), i));

/** A wildcard ClusterRole padded past the ingest's 900 KiB event limit. */
const paddedRole = {
  kind: "ClusterRole",
  apiVersion: "rbac.authorization.k8s.io/v1",
  metadata: { name: "helpful-tools", annotations: { notes: "n".repeat(1_200_000) } },
  rules: [{ apiGroups: ["*"], resources: ["*"], verbs: ["*"] }],
};

const events = [
  // A steady controller, all along.
  ...every(2400, T0, 8 * MINUTE, (at) => request("reconciler", at)),
  // A runaway client in minute 5 (flood after four minutes of learning).
  ...every(50, T0, 4 * MINUTE, (at) => request("script-bot", at)),
  ...every(2000, T0 + 5 * MINUTE, MINUTE, (at) => request("script-bot", at)),
  // A principal tried against what it may not do: a 403 burst in minute 3.
  ...every(30, T0 + 3 * MINUTE, 40_000, (at) =>
    request("mallory", at, {
      verb: "get",
      objectRef: { resource: "secrets", namespace: "prod", name: "db", apiVersion: "v1" },
      responseStatus: { metadata: {}, code: 403 },
      annotations: { "authorization.k8s.io/decision": "forbid", "authorization.k8s.io/reason": "" },
    }),
  ),
  // A storm of one per-event alert: secrets read with curl, twelve times in minute 2 and three in minute 6.
  ...[...every(12, T0 + 2 * MINUTE, 50_000, (at) => at), ...every(3, T0 + 6 * MINUTE, 30_000, (at) => at)].map((at, i) =>
    request("carol", at, {
      verb: "get",
      userAgent: "curl/8.5.0",
      requestURI: `/api/v1/namespaces/prod/secrets/s${i}`,
      objectRef: { resource: "secrets", namespace: "prod", name: `s${i}`, apiVersion: "v1" },
    }),
  ),
  // The padded wildcard role, in minute 7.
  request("eve", T0 + 7 * MINUTE, {
    level: "RequestResponse",
    verb: "create",
    requestURI: "/apis/rbac.authorization.k8s.io/v1/clusterroles",
    objectRef: { resource: "clusterroles", name: "helpful-tools", apiGroup: "rbac.authorization.k8s.io", apiVersion: "v1" },
    requestObject: paddedRole,
    responseStatus: { metadata: {}, code: 201 },
  }),
].sort((a, b) => (a.stageTimestamp as string).localeCompare(b.stageTimestamp as string) || a.auditID.localeCompare(b.auditID));

/** What must be identical: every alert's id, rule and count. */
const outcome = (alerts: Alert[]) => [...new Set(alerts.map((a) => `${a.rule.id} ${a.event.id} ${a.event.count ?? 1}`))].sort();

async function replayed(files: string[]): Promise<Alert[]> {
  const alerts: Alert[] = [];
  await replay({
    inputs: files,
    defaultCluster: CLUSTER,
    detector: new Detector(pack.rules, { windowRules: pack.windowRules }),
    onAlerts: (a) => {
      alerts.push(...a);
    },
  });
  return alerts;
}

const lines = (list: AuditEvent[]) => `${list.map((e) => JSON.stringify(e)).join("\n")}\n`;

describe("the same events in one file, in three out-of-order files, and live", () => {
  const brokers = inject("kafkaBrokers");
  let pipeline: Awaited<ReturnType<typeof deployBehindIngest>> | undefined;
  afterAll(async () => {
    await pipeline?.stop();
  });

  it("give identical alert ids and counts, storm summaries included; the padded wildcard role is still flagged", async () => {
    const dir = mkdtempSync(join(tmpdir(), "k8s-audit-order-"));
    writeFileSync(join(dir, "sorted.log"), lines(events));
    const single = await replayed([join(dir, "sorted.log")]);

    // One file per apiserver (round-robin), each with neighbours swapped up to 3 s apart, given newest-named first.
    const perServer = [0, 1, 2].map((k) => events.filter((_, i) => i % 3 === k));
    for (const file of perServer)
      for (let i = 0; i + 7 < file.length; i += 11) [file[i], file[i + 7]] = [file[i + 7] as AuditEvent, file[i] as AuditEvent];
    const names = perServer.map((file, k) => {
      const name = join(dir, `apiserver-${k}.log`);
      writeFileSync(name, lines(file));
      return name;
    });
    const three = await replayed([...names].reverse());
    expect(outcome(three)).toEqual(outcome(single));

    // Storms and timed rules are really in the comparison.
    const rules = new Set(single.map((a) => a.rule.id));
    for (const id of ["flood.principal", "auth.forbidden_burst", "rbac.role_with_wildcard_resources", "rbac.role_with_wildcard_verbs"])
      expect(rules, id).toContain(id);
    expect(single.some((a) => a.event.count === 12 && a.user?.name === "carol")).toBe(true);

    // Live: each apiserver posting its own file in batches of 400, the three interleaved.
    pipeline = await deployBehindIngest(brokers, 3, pack, CLUSTER);
    const { deployment, url } = pipeline;
    const batches = perServer.map((file) =>
      Array.from({ length: Math.ceil(file.length / 400) }, (_, b) => file.slice(b * 400, b * 400 + 400)),
    );
    for (let b = 0; b < Math.max(...batches.map((x) => x.length)); b++) {
      await Promise.all(
        batches.map(async (server) => {
          const items = server[b];
          if (!items) return;
          const res = await postJson(url, { kind: "EventList", apiVersion: "audit.k8s.io/v1", metadata: {}, items });
          expect(res.status).toBe(200);
        }),
      );
    }
    // Event time must pass the last windows: later traffic, as a live cluster has.
    const tail = every(60, T0 + 12 * MINUTE, MINUTE, (at) => request("reconciler", at));
    await postJson(url, { kind: "EventList", apiVersion: "audit.k8s.io/v1", metadata: {}, items: tail });
    const expected = new Set(outcome(single));
    const live = await deployment.alerts((seen) => outcome(seen).filter((o) => expected.has(o)).length === expected.size);
    expect(outcome(live)).toEqual(outcome(single));
    const truncatedRole = live.find((a) => a.rule.id === "rbac.role_with_wildcard_verbs");
    expect(truncatedRole?.kubernetes.audit.truncated).toBe(true);
  }, 300_000);
});
