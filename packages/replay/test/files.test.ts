import { Readable } from "node:stream";
import { describe, expect, it } from "vitest";
import { lineBatches } from "../src/files.js";

async function linesOf(chunks: (string | Buffer)[]): Promise<string[]> {
  const out: string[] = [];
  for await (const batch of lineBatches(Readable.from(chunks))) out.push(...batch);
  return out;
}

describe("line splitting", () => {
  it("splits across chunk boundaries, drops CR before LF, keeps a last line without a newline", async () => {
    expect(await linesOf(["a\nb", "c\r\n", "\nd\r", "\ne"])).toEqual(["a", "bc", "", "d", "e"]);
  });

  it("keeps a multi-byte character split between two chunks whole", async () => {
    const bytes = Buffer.from('{"user":"jürgen"}\n');
    const cut = bytes.indexOf(0xc3) + 1;
    expect(await linesOf([bytes.subarray(0, cut), bytes.subarray(cut)])).toEqual(['{"user":"jürgen"}']);
  });
});
