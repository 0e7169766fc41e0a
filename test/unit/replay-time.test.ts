import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Alert } from "@k8s-audit/core";
import { CLI } from "@k8s-audit/testkit";
import { describe, expect, it } from "vitest";

/**
 * Archives as investigators have them, through `k8s-audit replay` as they run it (no --cluster): events without a
 * cluster field, failed authentications as the apiserver logs them (one ResponseStarted event, `user: {}`), and a
 * broken clock in the middle. Written for this test.
 */
const T0 = Date.UTC(2026, 9, 5, 3, 0, 0);

function failedAuthentication(i: number, at: number) {
  return {
    kind: "Event",
    apiVersion: "audit.k8s.io/v1",
    level: "Metadata",
    auditID: `auth-fail-${i}`,
    stage: "ResponseStarted",
    requestURI: "/api/v1/namespaces/kube-system/secrets",
    verb: "list",
    user: {},
    sourceIPs: ["198.51.100.23"],
    userAgent: "python-requests/2.31.0",
    responseStatus: {
      metadata: {},
      status: "Failure",
      message: "Authentication failed, attempted: bearer",
      reason: "Unauthorized",
      code: 401,
    },
    requestReceivedTimestamp: new Date(at).toISOString().replace("Z", "123Z"),
    stageTimestamp: new Date(at + 1).toISOString().replace("Z", "456Z"),
  };
}

/** Ten minutes of credential stuffing from one address: 40 failures a minute. */
const burst = Array.from({ length: 400 }, (_, i) => failedAuthentication(i, T0 + i * 1500));

function replayAlerts(lines: unknown[]): Alert[] {
  const dir = mkdtempSync(join(tmpdir(), "replay-time-"));
  writeFileSync(join(dir, "audit.log"), `${lines.map((l) => JSON.stringify(l)).join("\n")}\n`);
  execFileSync(process.execPath, [CLI, "replay", join(dir, "audit.log"), "--out", join(dir, "alerts.ndjson"), "--no-progress"], {
    stdio: ["ignore", "ignore", "pipe"],
    env: { ...process.env, LOG_LEVEL: "error" },
  });
  return readFileSync(join(dir, "alerts.ndjson"), "utf8")
    .split("\n")
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Alert);
}

const bursts = (alerts: Alert[]) =>
  alerts
    .filter((a) => a.rule.id === "auth.unauthenticated_burst")
    .map((a) => `${a.event.id} ${a.labels?.window_key} ${a.event.start} ${a.event.count}`)
    .sort();

describe("replaying an archive with no cluster and failed authentications as the apiserver logs them", () => {
  it("flags the 401 burst in every minute, under the default cluster, keyed by the address", () => {
    const found = bursts(replayAlerts(burst));
    expect(found).toHaveLength(10);
    for (const line of found) expect(line).toContain("default|198.51.100.23");
    expect(found.every((l) => l.endsWith(" 40"))).toBe(true);
  }, 60_000);

  it("is not moved by one event dated in the year 2100 in the middle of the archive", () => {
    const future = {
      ...failedAuthentication(9999, T0),
      requestReceivedTimestamp: "2100-01-01T00:00:00.000000Z",
      stageTimestamp: "2100-01-01T00:00:00.000100Z",
    };
    const withFuture = [...burst.slice(0, 200), future, ...burst.slice(200)];
    expect(bursts(replayAlerts(withFuture))).toEqual(bursts(replayAlerts(burst)));
  }, 60_000);
});
