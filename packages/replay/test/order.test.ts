import type { AuditEvent } from "@k8s-audit/core";
import { describe, expect, it } from "vitest";
import { MinHeap } from "../src/heap.js";
import { compareEntries, type Entry, timeMicros } from "../src/order.js";
import { ReorderBuffer } from "../src/reorder.js";

/** A small deterministic PRNG (mulberry32), so failures reproduce. */
function random(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const entry = (micros: number, seq: number, auditID = `a-${seq}`, stage = "ResponseComplete"): Entry => ({
  micros,
  auditID,
  stage,
  received: "",
  input: 0,
  seq,
  file: "f",
  line: seq + 1,
  event: { auditID, stage } as AuditEvent,
});

/** Every entry through the buffer, then the rest drained: what one input hands on. */
function throughBuffer(entries: Entry[], capacity: number): { out: Entry[]; buffer: ReorderBuffer } {
  const buffer = new ReorderBuffer(capacity);
  const out: Entry[] = [];
  for (const e of entries) {
    const released = buffer.offer(e);
    if (released) out.push(released);
  }
  for (let e = buffer.takeSmallest(); e; e = buffer.takeSmallest()) out.push(e);
  return { out, buffer };
}

/** The plain definition: one heap of `capacity`, releasing its minimum whenever a new entry would overfill it. */
function throughHeap(entries: Entry[], capacity: number): Entry[] {
  const heap = new MinHeap<Entry>(compareEntries);
  const out: Entry[] = [];
  for (const e of entries) {
    heap.push(e);
    if (heap.size > capacity) out.push(heap.pop() as Entry);
  }
  while (heap.size) out.push(heap.pop() as Entry);
  return out;
}

/** Times 0..n-1 ms, each moved at most `displacement` places from where it belongs. */
function shuffledWithin(n: number, displacement: number, next: () => number): Entry[] {
  const entries = Array.from({ length: n }, (_, i) => entry(i * 1000, i));
  const block = displacement + 1;
  for (let start = 0; start < n; start += block) {
    for (let i = Math.min(start + block, n) - 1; i > start; i--) {
      const j = start + Math.floor(next() * (i - start + 1));
      [entries[i], entries[j]] = [entries[j] as Entry, entries[i] as Entry];
    }
  }
  return entries.map((e, seq) => ({ ...e, seq }));
}

describe("event time in microseconds", () => {
  const base = Date.UTC(2026, 2, 1, 10, 0, 0) * 1000;
  it("keeps the microseconds Date.parse drops, whatever the number of fraction digits or the offset", () => {
    expect(timeMicros("2026-03-01T10:00:00.123456Z")).toBe(base + 123_456);
    expect(timeMicros("2026-03-01T10:00:00.123456789Z")).toBe(base + 123_456);
    expect(timeMicros("2026-03-01T10:00:00.1Z")).toBe(base + 100_000);
    expect(timeMicros("2026-03-01T10:00:00.1234Z")).toBe(base + 123_400);
    expect(timeMicros("2026-03-01T10:00:00Z")).toBe(base);
    expect(timeMicros("2026-03-01T12:00:00.12+02:00")).toBe(base + 120_000);
    expect(timeMicros("2026-03-01T12:00:00.123456+02:00")).toBe(base + 123_456);
    expect(timeMicros("2100-01-01T00:00:00.000001Z")).toBe(Date.UTC(2100, 0, 1) * 1000 + 1);
    expect(timeMicros("yesterday")).toBeNaN();
  });

  it("reads a time in the second it read last (a fast path) exactly as any other", () => {
    const second = "2026-03-01T10:00:00";
    const cases: [string, number][] = [
      [`${second}.5Z`, base + 500_000],
      [`${second}Z`, base],
      [`${second}.000001Z`, base + 1],
      [`${second}.123456789Z`, base + 123_456],
      [`${second}.12Z`, base + 120_000],
      [`${second}.Z`, Number.NaN],
      [`${second}.1x2Z`, Number.NaN],
      [`${second}.7+00:00`, base + 700_000],
      ["2026-03-01T10:00:01.5Z", base + 1_500_000],
    ];
    for (const [time, micros] of cases) {
      expect(timeMicros(`${second}.999999Z`)).toBe(base + 999_999);
      expect(timeMicros(time), time).toBe(micros);
    }
  });

  it("orders by time, then auditID, then the stages in the order a request goes through them", () => {
    const at = (micros: number, auditID: string, stage: string) => entry(micros, 0, auditID, stage);
    const sorted = [
      at(1, "b", "ResponseComplete"),
      at(2, "a", "ResponseComplete"),
      at(2, "b", "RequestReceived"),
      at(2, "b", "ResponseStarted"),
      at(2, "b", "ResponseComplete"),
      at(2, "b", "Panic"),
    ];
    expect([...sorted].reverse().sort(compareEntries)).toEqual(sorted);
  });
});

describe("reorder buffer", () => {
  it("sorts exactly when no entry is further from its place than the buffer holds, and never holds more", () => {
    const next = random(7);
    for (const [n, displacement, capacity] of [
      [5000, 30, 30],
      [5000, 30, 1000],
      [2000, 0, 10],
      [300, 299, 300],
    ] as const) {
      const { out, buffer } = throughBuffer(shuffledWithin(n, displacement, next), capacity);
      expect(out.map((e) => e.micros)).toEqual(Array.from({ length: n }, (_, i) => i * 1000));
      expect(buffer.peak).toBeLessThanOrEqual(capacity);
      expect(buffer.size).toBe(0);
    }
  });

  it("gives exactly what one heap gives, also when the disorder is beyond its size", () => {
    const next = random(11);
    for (const capacity of [0, 1, 5, 64]) {
      const entries = Array.from({ length: 3000 }, (_, seq) => entry(Math.floor(next() * 1e6) * (next() < 0.9 ? 1 : -1), seq));
      expect(throughBuffer(entries, capacity).out).toEqual(throughHeap(entries, capacity));
    }
  });

  it("counts entries that arrive earlier than one before them", () => {
    const { buffer } = throughBuffer([entry(1, 0), entry(3, 1), entry(2, 2), entry(4, 3), entry(0, 4)], 10);
    expect(buffer.outOfOrder).toBe(2);
    expect(buffer.peak).toBe(5);
  });
});
