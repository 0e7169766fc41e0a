import type { ReplaySummary } from "@k8s-audit/replay";
import { describe, expect, it } from "vitest";
import { caseNamespace, formatSummary } from "../src/replay-command.js";

function summary(overrides: Partial<ReplaySummary> = {}): ReplaySummary {
  return {
    files: 2,
    bytes: 123_456,
    eventsRead: 1000,
    matched: 900,
    malformed: 0,
    skipped: 0,
    malformedSamples: [],
    futureEvents: 0,
    futureSamples: [],
    timeOutliers: 0,
    outlierSamples: [],
    outOfOrder: 0,
    late: 0,
    duplicates: 0,
    peakBuffered: 0,
    alerts: 0,
    alertsByRule: new Map(),
    alertsBySeverity: new Map(),
    principals: new Map(),
    seconds: 2.5,
    ...overrides,
  };
}

describe("caseNamespace", () => {
  it("makes a data stream namespace of a case id: lower case, runs of anything else as one underscore", () => {
    expect(caseNamespace("INC-2026/0042")).toBe("case_inc_2026_0042");
    expect(caseNamespace("  Breach: prod eu  ")).toBe("case_breach_prod_eu");
    expect(caseNamespace("a--b")).toBe("case_a_b");
  });

  it("refuses an id with no letters or digits", () => {
    expect(() => caseNamespace("--/--")).toThrow('--case "--/--" has no letters or digits');
  });
});

describe("formatSummary", () => {
  it("says what was read, how fast, and the time span with its length", () => {
    const text = formatSummary(summary({ firstEvent: "2026-12-07T10:00:00.123456Z", lastEvent: "2026-12-07T12:30:00Z" }), false);
    expect(text.split("\n")).toEqual([
      "",
      "files 2  bytes 123456  events read 1000  matched 900  malformed 0  (2.5 s, 400 events/s)",
      "time span 2026-12-07T10:00:00.123456Z → 2026-12-07T12:30:00Z (2 hours 29 minutes 59 seconds)",
      "",
    ]);
  });

  it("gives a time span of a single instant, and one over weeks in days of 24 hours, whatever the local time zone", () => {
    const instant = "2026-12-07T10:00:00Z";
    expect(formatSummary(summary({ firstEvent: instant, lastEvent: instant }), false)).toContain(`${instant} (0 seconds)`);
    expect(formatSummary(summary({ firstEvent: "2026-01-31T00:00:00Z", lastEvent: "2026-03-02T06:00:00Z" }), false)).toContain(
      "(30 days 6 hours)",
    );
  });

  it("gives a long run's length in words", () => {
    expect(formatSummary(summary({ seconds: 3725.4, eventsRead: 7_450_800 }), false)).toContain(
      "(1 hour 2 minutes 5 seconds, 2000 events/s)",
    );
    expect(formatSummary(summary({ seconds: 59.94 }), false)).toContain("(59.9 s, 17 events/s)");
  });

  it("lists malformed, future-dated, outlying, duplicate and late events, the first few with where they are", () => {
    const malformedSamples = Array.from({ length: 12 }, (_, i) => ({ file: "audit.log", line: i + 1, reason: "not JSON" }));
    const text = formatSummary(
      summary({
        malformed: 12,
        malformedSamples,
        futureEvents: 1,
        futureSamples: [{ file: "audit.log", line: 40, time: "2100-01-01T00:00:00Z" }],
        timeOutliers: 1,
        outlierSamples: [{ file: "audit.log", line: 41, time: "2099-01-01T00:00:00Z" }],
        duplicates: 3,
        late: 2,
      }),
      false,
    );
    const lines = text.split("\n");
    expect(lines.filter((l) => l.startsWith("malformed audit.log:"))).toHaveLength(10);
    expect(lines).toContain("… and 2 more malformed records");
    expect(lines).toContain("future audit.log:40: 2100-01-01T00:00:00Z");
    expect(lines).toContain("outlier audit.log:41: 2099-01-01T00:00:00Z");
    expect(lines).toContain("duplicates 3 events seen twice (overlapping inputs), replayed once");
    expect(lines.some((l) => l.startsWith("late 2 events came after later ones"))).toBe(true);
  });

  it("with detection: alerts by severity, a table of rules by count, and the top principals", () => {
    const text = formatSummary(
      summary({
        alerts: 5,
        alertsBySeverity: new Map([
          [47, 1],
          [99, 4],
        ]),
        alertsByRule: new Map([
          ["workload.exec_into_pod", { name: "Exec into a pod", severity: 47, count: 1 }],
          ["rbac.binding_to_cluster_admin", { name: "Binding to cluster-admin", severity: 99, count: 4 }],
        ]),
        principals: new Map([
          ["alice", 10],
          ["mallory", 900],
        ]),
      }),
      true,
    );
    expect(text.split("\n").slice(2)).toEqual([
      "",
      "alerts 5  critical 4  medium 1",
      "RULE                           SEVERITY  COUNT  NAME",
      "rbac.binding_to_cluster_admin  critical      4  Binding to cluster-admin",
      "workload.exec_into_pod         medium        1  Exec into a pod",
      "",
      "top principals",
      "       900  mallory",
      "        10  alice",
      "",
    ]);
  });
});
