import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Alert, AuditEvent } from "@k8s-audit/core";
import { Detector } from "@k8s-audit/detector";
import { loadRules } from "@k8s-audit/rules";
import { describe, expect, it } from "vitest";
import { replay } from "../src/index.js";
import { describeJsonError } from "../src/read.js";

const SECRET = "cmVwbGF5LXNlY3JldA==";

function archive(lines: string[]): string {
  const dir = mkdtempSync(join(tmpdir(), "replay-redact-"));
  writeFileSync(join(dir, "audit.log"), `${lines.join("\n")}\n`);
  return dir;
}

const secretCreate = {
  kind: "Event",
  apiVersion: "audit.k8s.io/v1",
  level: "RequestResponse",
  auditID: "r-1",
  stage: "ResponseComplete",
  requestURI: "/api/v1/namespaces/prod/secrets",
  verb: "create",
  user: { username: "alice", groups: ["system:authenticated"] },
  sourceIPs: ["198.51.100.4"],
  objectRef: { resource: "secrets", namespace: "prod", name: "db", apiVersion: "v1" },
  responseStatus: { code: 201 },
  requestObject: { kind: "Secret", data: { password: SECRET } },
  stageTimestamp: "2026-03-01T10:00:00.000000Z",
};
const exec = {
  ...secretCreate,
  auditID: "r-2",
  level: "Request",
  stage: "ResponseStarted",
  verb: "create",
  requestURI: "/api/v1/namespaces/prod/pods/db-0/exec?command=mysql&command=-pHunter2Hunter2&container=db",
  objectRef: { resource: "pods", subresource: "exec", namespace: "prod", name: "db-0", apiVersion: "v1" },
  responseStatus: { code: 101 },
  requestObject: undefined,
  stageTimestamp: "2026-03-01T10:00:01.000000Z",
};

describe("replay redacts every event as it is read", () => {
  it("hands redacted events to every sink and builds alerts from them", async () => {
    const seen: AuditEvent[] = [];
    const alerts: Alert[] = [];
    await replay({
      inputs: [archive([JSON.stringify(secretCreate), JSON.stringify(exec)])],
      detector: new Detector(loadRules(), { stormWindowMs: 0 }),
      onEvent: (e) => {
        seen.push(e);
      },
      onAlerts: (a) => {
        alerts.push(...a);
      },
    });
    const text = JSON.stringify([seen, alerts]);
    expect(text).not.toContain(SECRET);
    expect(text).not.toContain("Hunter2");
    expect(seen[0]?.annotations?.["k8s-audit.io/redacted"]).toBe("requestObject.data");
    // Detection still saw what it needs: the Secret's creation and the exec (binary kept).
    const rules = alerts.map((a) => a.rule.id);
    expect(rules).toContain("secret.created");
    expect(rules).toContain("workload.exec_into_pod");
    expect(seen[1]?.requestURI).toBe("/api/v1/namespaces/prod/pods/db-0/exec?command=mysql&command=-p%5BREDACTED%5D&container=db");
  });

  it("`redact: false` leaves events as archived (for callers that need the raw values; the CLI has no such flag)", async () => {
    const seen: AuditEvent[] = [];
    await replay({ inputs: [archive([JSON.stringify(secretCreate)])], redact: false, onEvent: (e) => void seen.push(e) });
    expect(JSON.stringify(seen)).toContain(SECRET);
  });

  it("reports a malformed record without quoting it", async () => {
    const summary = await replay({ inputs: [archive(['password=Hunter2Hunter2 {"kind":"Secret"}'])] });
    expect(summary.malformed).toBe(1);
    expect(JSON.stringify(summary.malformedSamples)).not.toContain("Hunter2");
    let err: unknown;
    try {
      JSON.parse('{"a": Hunter2Hunter2}');
    } catch (e) {
      err = e;
    }
    expect(describeJsonError(err)).not.toContain("Hunter2");
    expect(describeJsonError(err)).toMatch(/Unexpected token/);
  });
});
