import { AuditEventSchema, EventListSchema } from "@k8s-audit/core";
import { describe, expect, it } from "vitest";
import { apiserverTime, auditEvent, auditLogEvent, clusterAdminBinding, eventList, parsedAuditEvent } from "../src/index.js";

describe("the audit-event factory", () => {
  it("makes valid events, each under its own auditID", () => {
    for (const e of [auditEvent(), auditLogEvent(), clusterAdminBinding()]) expect(AuditEventSchema.safeParse(e).success).toBe(true);
    expect(auditEvent().auditID).not.toBe(auditEvent().auditID);
    expect(EventListSchema.safeParse(eventList([auditEvent()])).success).toBe(true);
  });

  it("replaces fields whole and leaves out those overridden with undefined", () => {
    const e = auditEvent({ user: { username: "bob" }, userAgent: undefined, annotations: undefined });
    expect(e.user).toEqual({ username: "bob" });
    expect(Object.keys(e)).not.toContain("userAgent");
    expect(Object.keys(e)).not.toContain("annotations");
    expect(e.sourceIPs).toEqual(["198.51.100.7"]);
  });

  it("writes log lines with kind and apiVersion, webhook items without", () => {
    expect(auditLogEvent()).toMatchObject({ kind: "Event", apiVersion: "audit.k8s.io/v1" });
    expect(Object.keys(auditEvent())).not.toContain("kind");
  });

  it("stops a test at an invalid event", () => {
    expect(() => parsedAuditEvent({ stage: "Sometime" })).toThrow();
    expect(parsedAuditEvent({ cluster: "prod" }).cluster).toBe("prod");
  });

  it("writes times as the apiserver does, with microseconds", () => {
    expect(apiserverTime(Date.UTC(2026, 0, 1), 7)).toBe("2026-01-01T00:00:00.000007Z");
    expect(auditEvent().stageTimestamp).toBe("2026-11-28T12:00:00.012000Z");
  });
});
