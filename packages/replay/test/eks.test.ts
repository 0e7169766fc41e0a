import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import type { AuditEvent } from "@k8s-audit/core";
import { describe, expect, it } from "vitest";
import { replay } from "../src/index.js";

/**
 * The EKS exports people actually hold (shapes of the AWS CLI's and CloudWatch's output; values invented here): each
 * carries the same audit events, and replay must read every one of them.
 */
const audit = (id: string) => ({
  kind: "Event",
  apiVersion: "audit.k8s.io/v1",
  level: "Metadata",
  auditID: id,
  stage: "ResponseComplete",
  requestURI: "/api/v1/namespaces/kube-system/secrets",
  verb: "list",
  user: { username: "kubernetes-admin", groups: ["system:masters", "system:authenticated"] },
  sourceIPs: ["192.0.2.10"],
  objectRef: { resource: "secrets", namespace: "kube-system", apiVersion: "v1" },
  responseStatus: { code: 200 },
  requestReceivedTimestamp: "2026-11-30T10:00:00.000001Z",
  stageTimestamp: "2026-11-30T10:00:00.000002Z",
});
const logEvent = (id: string, n: number) => ({ id: `3${n}`, timestamp: 1_796_032_800_000 + n, message: JSON.stringify(audit(id)) });

async function replayed(name: string, content: string): Promise<{ events: AuditEvent[]; malformed: string[]; skipped: number }> {
  const dir = mkdtempSync(join(tmpdir(), "eks-"));
  writeFileSync(join(dir, name), content);
  const events: AuditEvent[] = [];
  const summary = await replay({ inputs: [dir], onEvent: (e) => void events.push(e) });
  return { events, malformed: summary.malformedSamples.map((m) => m.reason), skipped: summary.skipped };
}

describe("EKS CloudWatch exports", () => {
  it("reads `aws logs filter-log-events` output", async () => {
    const out = {
      events: [{ logStreamName: "kube-apiserver-audit-1", ...logEvent("e1", 1), ingestionTime: 1, eventId: "x" }],
      searchedLogStreams: [],
    };
    expect((await replayed("filter.json", JSON.stringify(out, null, 2))).events.map((e) => e.auditID)).toEqual(["e1"]);
  });

  it("reads `aws logs get-query-results` rows, with @message as a string or an object", async () => {
    const out = {
      results: [
        [
          { field: "@timestamp", value: "2026-11-30 10:00:00.000" },
          { field: "@message", value: JSON.stringify(audit("q1")) },
        ],
        [{ field: "@message", value: audit("q2") }],
      ],
      status: "Complete",
    };
    expect((await replayed("insights.json", JSON.stringify(out))).events.map((e) => e.auditID).sort()).toEqual(["q1", "q2"]);
  });

  it("reads a Lambda subscription payload, takes the cluster from the log group, and skips control messages", async () => {
    const data = (payload: unknown) => gzipSync(JSON.stringify(payload)).toString("base64");
    const lines = [
      {
        awslogs: {
          data: data({
            messageType: "DATA_MESSAGE",
            logGroup: "/aws/eks/prod-eu/cluster",
            logStream: "kube-apiserver-audit-1",
            logEvents: [logEvent("s1", 1), logEvent("s2", 2)],
          }),
        },
      },
      {
        awslogs: {
          data: data({
            messageType: "CONTROL_MESSAGE",
            logGroup: "",
            logEvents: [{ id: "", timestamp: 1, message: "CWL CONTROL MESSAGE: Checking health of destination Firehose." }],
          }),
        },
      },
    ];
    const { events, skipped } = await replayed("lambda.jsonl", `${lines.map((l) => JSON.stringify(l)).join("\n")}\n`);
    expect(events.map((e) => [e.auditID, e.cluster])).toEqual([
      ["s1", "prod-eu"],
      ["s2", "prod-eu"],
    ]);
    expect(skipped).toBe(1);
  });

  it("reads CreateExportTask files (`<timestamp> <json>` lines)", async () => {
    const text = ["e1", "e2"].map((id) => `2026-11-30T10:00:00.001Z ${JSON.stringify(audit(id))}`).join("\n");
    expect((await replayed("000000.log", `${text}\n`)).events.map((e) => e.auditID)).toEqual(["e1", "e2"]);
  });

  it("a message cut at 256 KB costs that event only, and says why", async () => {
    const cut = {
      ...logEvent("big", 2),
      message: JSON.stringify({ ...audit("big"), requestObject: { pad: "x".repeat(300_000) } }).slice(0, 262_100),
    };
    const { events, malformed } = await replayed("filter.json", JSON.stringify({ events: [logEvent("ok", 1), cut, logEvent("ok2", 3)] }));
    expect(events.map((e) => e.auditID)).toEqual(["ok", "ok2"]);
    expect(malformed).toEqual([
      expect.stringMatching(
        /^record 1 of the batch: EKS CloudWatch message is not JSON \(262100 characters: cut by CloudWatch's 256 KB limit\?\)/,
      ),
    ]);
  });
});
