import { describe, expect, it } from "vitest";
import { AuditEventSchema, dedupKey, eventTime, isRfc3339Time, itemsOf, looksLikeAuditEvent, trustedSourceIP } from "../src/index.js";

const v1 = {
  level: "Metadata",
  auditID: "0d2b4c6e-1111-4a2b-9c3d-5e6f7a8b9c0d",
  stage: "ResponseComplete",
  requestURI: "/api/v1/namespaces/kube-system/secrets/token",
  verb: "get",
  user: { username: "system:serviceaccount:ci:deployer", groups: ["system:serviceaccounts"] },
  sourceIPs: ["203.0.113.9", "10.0.0.4"],
  objectRef: { resource: "secrets", namespace: "kube-system", name: "token", apiVersion: "v1" },
  responseStatus: { metadata: {}, code: 200 },
  requestReceivedTimestamp: "2026-03-01T10:00:00.000001Z",
  stageTimestamp: "2026-03-01T10:00:00.004321Z",
};

describe("AuditEventSchema", () => {
  it("accepts a v1 item without kind/apiVersion, as the webhook sends it", () => {
    expect(AuditEventSchema.safeParse(v1).success).toBe(true);
  });

  it("accepts the v1beta1 archive shape, which may lack stageTimestamp", () => {
    const { stageTimestamp: _drop, ...rest } = v1;
    const beta = {
      ...rest,
      kind: "Event",
      apiVersion: "audit.k8s.io/v1beta1",
      timestamp: "2018-10-26T14:26:34Z",
      metadata: { creationTimestamp: "2018-10-26T14:26:34Z" },
    };
    const parsed = AuditEventSchema.parse(beta);
    expect(eventTime(parsed)).toBe("2018-10-26T14:26:34Z");
  });

  it("keeps fields it does not know (we are a pipe, not a filter)", () => {
    const parsed = AuditEventSchema.parse({ ...v1, futureField: { x: 1 } });
    expect((parsed as Record<string, unknown>).futureField).toEqual({ x: 1 });
  });

  it("names the failing field", () => {
    const r = AuditEventSchema.safeParse({ ...v1, stage: "Sometime", auditID: "" });
    expect(r.success).toBe(false);
    const paths = r.error?.issues.map((i) => i.path.join("."));
    expect(paths).toEqual(expect.arrayContaining(["stage", "auditID"]));
  });

  it("rejects an event with no time at all", () => {
    const { stageTimestamp: _drop, ...rest } = v1;
    expect(AuditEventSchema.safeParse(rest).success).toBe(false);
  });

  it("accepts only strict RFC 3339 timestamps: a loose one would let a client move event time", () => {
    for (const good of ["2026-03-01T10:00:00Z", "2026-03-01T10:00:00.123456Z", "2026-03-01T10:00:00.1+02:00"])
      expect(AuditEventSchema.safeParse({ ...v1, stageTimestamp: good }).success, good).toBe(true);
    for (const bad of ["1", "Sun, 01 Mar 2026 10:00:00 GMT", "2026-03-01", "2026-03-01 10:00:00Z", "2026-13-01T10:00:00Z", "2100"]) {
      expect(AuditEventSchema.safeParse({ ...v1, stageTimestamp: bad }).success, bad).toBe(false);
      expect(looksLikeAuditEvent({ ...v1, stageTimestamp: bad }), bad).toBe(false);
    }
    expect(AuditEventSchema.safeParse({ ...v1, requestReceivedTimestamp: "yesterday" }).success).toBe(false);
  });

  it("takes RFC 3339 as the apiserver writes it: up to nanoseconds, Z or an offset, a day that exists", () => {
    const good = [
      "2026-12-07T10:00:00.123456Z", // microseconds: what the apiserver writes
      "2026-12-07T10:00:00.123456789Z", // Go's RFC3339Nano
      "2026-12-07T10:00:00.123456-05:30",
      "2026-12-07T10:00:00+00:00",
      "2026-12-07t10:00:00z", // RFC 3339 §5.6 allows lower case
      "2026-12-30t10:00:00z", // and on a day the calendar is asked about
      "2024-02-29T10:00:00Z", // a leap year
      "2026-04-30T23:59:59.999999Z",
    ];
    const bad = [
      "2026-12-07T10:00:00.1234567890Z", // ten fractional digits
      "2026-12-07T10:00:00.Z",
      "2026-12-07T10:00:00", // no zone: local time of whichever reader
      "2026-12-07T10:00:00.123456",
      "2026-12-07T10:00Z", // no seconds
      "2026-12-07T10:00:00+0530", // offset without a colon (ISO 8601 basic, not RFC 3339)
      "2026-12-07T10:00:00+24:00",
      "2026-02-30T10:00:00Z", // Date.parse rolls it over to 2 March
      "2026-02-29T10:00:00Z", // not a leap year
      "2026-04-31T10:00:00Z",
      "2026-12-07T24:00:00Z",
      "2026-12-31T23:59:60Z", // a leap second: Go never writes one, Date cannot hold one
      "2026-12-07T10:00:60Z",
      "20261207T100000Z",
      " 2026-12-07T10:00:00Z",
    ];
    for (const time of good) {
      expect(isRfc3339Time(time), time).toBe(true);
      expect(AuditEventSchema.safeParse({ ...v1, stageTimestamp: time }).success, time).toBe(true);
      expect(looksLikeAuditEvent({ ...v1, stageTimestamp: time }), time).toBe(true);
    }
    for (const time of bad) {
      expect(isRfc3339Time(time), time).toBe(false);
      expect(AuditEventSchema.safeParse({ ...v1, stageTimestamp: time }).success, time).toBe(false);
      expect(looksLikeAuditEvent({ ...v1, stageTimestamp: time }), time).toBe(false);
    }
  });

  it("does not take a time that is not a string, even one that prints as a time", () => {
    expect(looksLikeAuditEvent({ ...v1, stageTimestamp: [v1.stageTimestamp] })).toBe(false);
    expect(looksLikeAuditEvent({ ...v1, stageTimestamp: Date.parse(v1.stageTimestamp) })).toBe(false);
  });

  it("trusts only the last source IP and dedups on auditID + requestReceivedTimestamp + stage + stageTimestamp", () => {
    const e = AuditEventSchema.parse(v1);
    expect(trustedSourceIP(e)).toBe("10.0.0.4");
    expect(dedupKey(e)).toBe(`${v1.auditID}|${v1.requestReceivedTimestamp}|ResponseComplete|${v1.stageTimestamp}`);
  });
});

describe("itemsOf", () => {
  it("splits an EventList, a single Event and an array", () => {
    expect(itemsOf({ kind: "EventList", items: [v1, v1] })).toEqual({ shape: "EventList", items: [v1, v1] });
    expect(itemsOf(v1)).toEqual({ shape: "Event", items: [v1] });
    expect(itemsOf([v1])).toEqual({ shape: "array", items: [v1] });
  });

  it("says what it expected for anything else", () => {
    expect(() => itemsOf({ kind: 0 })).toThrow(/expected an EventList, an Event or an array of Events, got kind 0/);
    expect(() => itemsOf("text")).toThrow(/got string/);
    expect(() => itemsOf({ kind: "EventList", items: 3 })).toThrow(/without an items array/);
  });
});
