import type { AuditEvent } from "@k8s-audit/core";
import { describe, expect, it } from "vitest";
import { compileFilters, parseTime } from "../src/index.js";

const NOW = Date.UTC(2026, 11, 7, 12, 0, 0);
const HOUR = 3_600_000;

describe("parseTime", () => {
  it("reads a time relative to now in fixed-length units, fractions allowed", () => {
    expect(parseTime("-10s", NOW)).toBe(NOW - 10_000);
    expect(parseTime("-30m", NOW)).toBe(NOW - HOUR / 2);
    expect(parseTime("-2h", NOW)).toBe(NOW - 2 * HOUR);
    expect(parseTime(" -1.5h ", NOW)).toBe(NOW - 1.5 * HOUR);
    expect(parseTime("-7d", NOW)).toBe(NOW - 7 * 24 * HOUR);
    expect(parseTime("-1.5d", NOW)).toBe(NOW - 36 * HOUR);
    expect(parseTime("-1w", NOW)).toBe(NOW - 7 * 24 * HOUR);
  });

  it("reads ISO 8601: RFC 3339 with any fraction and zone, a bare date as midnight UTC, no zone as local time", () => {
    expect(parseTime("2026-12-07T10:00:00Z")).toBe(Date.UTC(2026, 11, 7, 10));
    expect(parseTime("2026-12-07T10:00:00.123456Z")).toBe(Date.UTC(2026, 11, 7, 10, 0, 0, 123));
    expect(parseTime("2026-12-07T10:00:00.5+02:00")).toBe(Date.UTC(2026, 11, 7, 8, 0, 0, 500));
    expect(parseTime("2026-12-07t10:00:00z")).toBe(Date.UTC(2026, 11, 7, 10));
    expect(parseTime("2026-12-07")).toBe(Date.UTC(2026, 11, 7));
    expect(parseTime("2026-12-07T10:00")).toBe(new Date(2026, 11, 7, 10).getTime());
  });

  it("refuses what is not ISO 8601, or not a day of the calendar", () => {
    for (const text of [
      "yesterday",
      "March 7, 2026",
      "Mon, 07 Dec 2026 10:00:00 GMT",
      "2026-02-30",
      "2026-02-30T10:00:00Z",
      "2h",
      "-2y",
      "",
    ])
      expect(() => parseTime(text, NOW), text).toThrow(/not a time: .* \(use ISO 8601 or a relative time like -2h, -30m, -7d\)/);
  });
});

describe("compileFilters", () => {
  const at = (stageTimestamp: string) =>
    ({ auditID: stageTimestamp, stage: "ResponseComplete", verb: "get", user: {}, stageTimestamp }) as unknown as AuditEvent;

  it("keeps events from `from` to `to`, both included, relative ones from the given now", () => {
    const accept = compileFilters({ from: "-2h", to: "2026-12-07T11:00:00.000001Z" }, NOW);
    expect(
      [
        "2026-12-07T09:59:59.999999Z",
        "2026-12-07T10:00:00Z",
        "2026-12-07T12:00:00+01:00",
        "2026-12-07T11:00:00Z",
        "2026-12-07T11:00:00.001Z",
      ].map((t) => accept(at(t))),
    ).toEqual([false, true, true, true, false]);
  });
});
