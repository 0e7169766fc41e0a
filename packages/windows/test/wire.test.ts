import { describe, expect, it } from "vitest";
import { type Bucket, decodeWindowsRecord, encodeBatch, encodePartial, encodeTick, WINDOWS_RECORD_VERSION } from "../src/index.js";

const facts = {
  time: 1_800_000_000_000,
  auditID: "a-1",
  cluster: "prod",
  verb: "get",
  requestURI: "/api/v1/secrets",
  stage: "ResponseComplete",
};
const bucket: Bucket = {
  count: 3,
  hits: 1,
  first: facts,
  seed: facts,
  minTime: facts.time,
  maxTime: facts.time + 5,
  sample: ["a-1", "a-2", "a-3"],
};

describe("the windows-topic wire format", () => {
  it("round-trips ticks and partial counts under the current version", () => {
    const tick = decodeWindowsRecord(encodeTick({ source: 1, sources: 3, from: 10, to: 20 }));
    expect(tick).toEqual({ record: { tick: { source: 1, sources: 3, from: 10, to: 20 } } });
    const batch = encodeBatch("partials", [encodePartial({ rule: "r", key: "k", start: 0, bucket })]);
    expect(JSON.parse(batch).v).toBe(WINDOWS_RECORD_VERSION);
    const decoded = decodeWindowsRecord(batch);
    if (!("record" in decoded) || !("partials" in decoded.record)) throw new Error(`not partials: ${JSON.stringify(decoded)}`);
    expect(decoded.record.partials[0]?.bucket).toMatchObject({ count: 3, hits: 1, sample: ["a-1", "a-2", "a-3"], first: facts });
  });

  it("reads records written before versioning as version 1", () => {
    expect(decodeWindowsRecord(JSON.stringify({ tick: { source: 0, sources: 1, from: 1, to: 2 } }))).toHaveProperty("record");
  });

  it("refuses, with the reason, a record of another version or one that does not validate as a whole", () => {
    expect(decodeWindowsRecord(JSON.stringify({ v: 2, tick: { source: 0, sources: 1, from: 1, to: 2 } }))).toEqual({
      unusable: `record version 2; this build reads version ${WINDOWS_RECORD_VERSION}`,
    });
    const good = JSON.parse(encodePartial({ rule: "r", key: "k", start: 0, bucket }));
    const bad = { ...good, bucket: { ...good.bucket, c: "3" } };
    const mixed = decodeWindowsRecord(JSON.stringify({ v: 1, partials: [good, bad] }));
    expect(mixed).toHaveProperty("unusable");
    expect((mixed as { unusable: string }).unusable).toMatch(/partials/);
    expect(decodeWindowsRecord("{")).toEqual({ unusable: "not JSON" });
    expect(decodeWindowsRecord("[]")).toEqual({ unusable: "not a JSON object" });
    expect(decodeWindowsRecord('{"v":1,"other":[]}')).toEqual({ unusable: "neither tick, partials nor alerts" });
  });
});
