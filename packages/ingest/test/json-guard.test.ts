import { describe, expect, it } from "vitest";
import { depthMarker, parseJsonGuarded } from "../src/index.js";

const nested = (depth: number, leaf = "1") => `${'{"a":'.repeat(depth)}${leaf}${"}".repeat(depth)}`;
const nestedArrays = (depth: number) => `${"[".repeat(depth)}${"]".repeat(depth)}`;
/** Depth of a parsed value, iteratively (the thing under test must not be needed to measure it). */
function depthOf(value: unknown): number {
  let max = 0;
  const stack: [unknown, number][] = [[value, 0]];
  while (stack.length) {
    const [v, d] = stack.pop() as [unknown, number];
    if (v === null || typeof v !== "object") continue;
    max = Math.max(max, d + 1);
    for (const child of Object.values(v)) stack.push([child, d + 1]);
  }
  return max;
}

describe("parseJsonGuarded", () => {
  it("parses ordinary JSON exactly as JSON.parse, without cuts", () => {
    const text = JSON.stringify({ kind: "EventList", items: [{ a: [1, { b: "}]{[" }], s: 'q\\"{' }] });
    expect(parseJsonGuarded(text, 8)).toEqual({ value: JSON.parse(text), cuts: [] });
  });

  it("reports malformed JSON as JSON.parse does", () => {
    for (const bad of ['{"items":[', '{"a":"unterminated', "]", '{"a":1}}', "", '{"a":1'])
      expect(() => parseJsonGuarded(bad, 8), bad).toThrow(SyntaxError);
  });

  it("cuts, in an EventList, only the over-deep value of the one item that has it, and says where", () => {
    const ok = { auditID: "ok", requestObject: { a: { b: 1 } } };
    const text = `{"kind":"EventList","items":[${JSON.stringify(ok)},{"auditID":"deep","verb":"patch","requestObject":${nested(10_000)}}]}`;
    const { value, cuts } = parseJsonGuarded(text, 16) as { value: { items: Record<string, unknown>[] }; cuts: unknown[] };
    expect(value.items[0]).toEqual(ok);
    expect(value.items[1]?.auditID).toBe("deep");
    expect(value.items[1]?.verb).toBe("patch");
    expect(cuts).toEqual([{ item: 1, field: "requestObject", depth: 10_000 - 16 }]);
    // The first 16 levels of the value are kept; the level that went too deep is the marker.
    let v = value.items[1]?.requestObject as Record<string, unknown>;
    for (let i = 0; i < 15; i++) v = v.a as Record<string, unknown>;
    expect(v.a).toEqual(depthMarker(10_000 - 16));
    expect(depthOf(value)).toBeLessThanOrEqual(3 + 16 + 1);
  });

  it("counts depth from each event: a plain event and an array of events", () => {
    expect(parseJsonGuarded(`{"auditID":"x","requestObject":${nested(16)}}`, 16).cuts).toEqual([]);
    expect(parseJsonGuarded(`{"auditID":"x","requestObject":${nested(17)}}`, 16).cuts).toEqual([
      { item: 0, field: "requestObject", depth: 1 },
    ]);
    const array = `[{"a":1},{"b":2},{"responseObject":${nested(40)}},{"requestObject":${nested(40)}}]`;
    expect(parseJsonGuarded(array, 16).cuts).toEqual([
      { item: 2, field: "responseObject", depth: 24 },
      { item: 3, field: "requestObject", depth: 24 },
    ]);
  });

  it("bounds an item that is itself a deep array, and a root that is one", () => {
    const { value, cuts } = parseJsonGuarded(`{"kind":"EventList","items":[${nestedArrays(5000)}]}`, 16);
    expect(cuts).toEqual([{ item: 0, field: "", depth: 5000 - 1 - 16 }]);
    expect(depthOf(value)).toBeLessThanOrEqual(3 + 16 + 1);
    expect(depthOf(parseJsonGuarded(nestedArrays(100_000), 16).value)).toBeLessThanOrEqual(2 + 16 + 1);
  });

  it("ignores brackets and escaped quotes inside strings", () => {
    const tricky = `{"requestObject":{"s":"${"[{".repeat(500)}\\\\","t":"\\"${"[".repeat(50)}${"]".repeat(50)}"}}`;
    expect(parseJsonGuarded(tricky, 4)).toEqual({ value: JSON.parse(tricky), cuts: [] });
  });

  it("scans a 64 MiB body in about the time JSON.parse takes", () => {
    const event = JSON.stringify({ auditID: "x", requestObject: { a: { b: [1, 2, { c: "x".repeat(200) }] } } });
    const text = `{"kind":"EventList","items":[${Array.from({ length: Math.ceil((64 * 1024 * 1024) / event.length) }, () => event).join(",")}]}`;
    const start = performance.now();
    parseJsonGuarded(text, 128);
    expect(performance.now() - start).toBeLessThan(3000);
  });
});
