import { describe, expect, it } from "vitest";
import { type Condition, compileCidr, compileCondition, compilePath } from "../src/index.js";

const ctx = {
  lists: new Map([["admins", ["root", "admin"]]]),
  macros: new Map<string, Condition>([["is_create", { field: "verb", equals: "create" }]]),
};
const test = (c: Condition, event: unknown) => compileCondition(c, ctx)(event);

const event = {
  verb: "create",
  user: { username: "Admin", groups: ["devs", "system:authenticated"] },
  sourceIPs: ["10.1.2.3", "2001:db8::7"],
  requestObject: { spec: { containers: [{ securityContext: { privileged: false } }, { securityContext: { privileged: true } }] } },
  responseStatus: { code: 201 },
};

describe("condition language", () => {
  it("resolves dotted paths with any-element semantics on arrays", () => {
    expect(compilePath("requestObject.spec.containers.securityContext.privileged")(event)).toEqual([false, true]);
    expect(test({ field: "requestObject.spec.containers.securityContext.privileged", equals: true }, event)).toBe(true);
    expect(test({ field: "user.groups", equals: "devs" }, event)).toBe(true);
    expect(test({ field: "missing.path", exists: false }, event)).toBe(true);
    expect(test({ field: "user.username", exists: true }, event)).toBe(true);
  });

  it("supports every operator", () => {
    expect(test({ field: "user.username", in: { list: "admins" }, ignore_case: true }, event)).toBe(true);
    expect(test({ field: "user.username", in: { list: "admins" } }, event)).toBe(false);
    expect(test({ field: "user.groups", prefix: "system:" }, event)).toBe(true);
    expect(test({ field: "user.groups", suffix: ["ated", "x"] }, event)).toBe(true);
    expect(test({ field: "user.groups", contains: "authent" }, event)).toBe(true);
    expect(test({ field: "user.groups", glob: "system:*ed" }, event)).toBe(true);
    expect(test({ field: "user.username", regex: "^adm" }, event)).toBe(false);
    expect(test({ field: "user.username", regex: "^adm", ignore_case: true }, event)).toBe(true);
    expect(test({ field: "sourceIPs", cidr: "10.0.0.0/8" }, event)).toBe(true);
    expect(test({ field: "sourceIPs", cidr: "2001:db8::/32" }, event)).toBe(true);
    expect(test({ field: "responseStatus.code", gte: 200 }, event)).toBe(true);
    expect(test({ field: "responseStatus.code", lt: 201 }, event)).toBe(false);
  });

  it("combines with all / any / not / macro", () => {
    expect(test({ all: [{ macro: "is_create" }, { not: { field: "verb", equals: "delete" } }] }, event)).toBe(true);
    expect(
      test(
        {
          any: [
            { field: "verb", equals: "get" },
            { field: "verb", equals: "list" },
          ],
        },
        event,
      ),
    ).toBe(false);
  });

  it("reports unknown macros, lists and cycles at compile time", () => {
    expect(() => compileCondition({ macro: "nope" }, ctx)).toThrow(/unknown macro "nope"/);
    expect(() => compileCondition({ field: "verb", in: { list: "nope" } }, ctx)).toThrow(/unknown list "nope"/);
    const cyclic = {
      lists: new Map(),
      macros: new Map<string, Condition>([
        ["a", { macro: "b" }],
        ["b", { macro: "a" }],
      ]),
    };
    expect(() => compileCondition({ macro: "a" }, cyclic)).toThrow(/macro cycle: a → b → a/);
  });
});

describe("CIDR", () => {
  it("matches IPv4, IPv4-mapped IPv6 and IPv6", () => {
    const net = compileCidr("192.168.0.0/16");
    expect(net("192.168.44.1")).toBe(true);
    expect(net("::ffff:192.168.44.1")).toBe(true);
    expect(net("192.169.0.1")).toBe(false);
    expect(net("not-an-ip")).toBe(false);
    expect(compileCidr("fd00::/8")("fd12:3456::1")).toBe(true);
    expect(compileCidr("0.0.0.0/0")("8.8.8.8")).toBe(true);
    expect(() => compileCidr("10.0.0.0/33")).toThrow(/invalid CIDR/);
  });
});

describe("paths with dotted keys", () => {
  it("reads label and annotation keys written in brackets", () => {
    const ns = { requestObject: { metadata: { labels: { "pod-security.kubernetes.io/enforce": "privileged" } } } };
    expect(compilePath("requestObject.metadata.labels[pod-security.kubernetes.io/enforce]")(ns)).toEqual(["privileged"]);
  });
});

describe("wildcard path keys", () => {
  it("takes every value with * and the key names with ~keys", () => {
    const cm = { requestObject: { data: { "access.properties": "aws_access_key_id = X", ui: "color=red" } } };
    expect(compilePath("requestObject.data.*")(cm)).toEqual(["aws_access_key_id = X", "color=red"]);
    expect(compilePath("requestObject.data.~keys")(cm)).toEqual(["access.properties", "ui"]);
  });
});
