import { mkdtempSync, renameSync, unlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { watchFiles } from "../src/index.js";

const until = async (check: () => boolean, ms = 2000) => {
  for (const end = Date.now() + ms; Date.now() < end && !check(); ) await new Promise((r) => setTimeout(r, 10));
  return check();
};

/** Token and certificate files are re-read on change; a deletion must be seen even right after the watch starts. */
describe("watchFiles", () => {
  it("sees a file deleted at once after the watch starts", async () => {
    const file = join(mkdtempSync(join(tmpdir(), "watch-")), "tokens");
    writeFileSync(file, "one a\n");
    let changes = 0;
    const stop = watchFiles([file], () => changes++, 20);
    unlinkSync(file);
    expect(await until(() => changes > 0)).toBe(true);
    stop();
  });

  it("sees a rewrite and an atomic replacement (a new inode, as Kubernetes swaps a Secret's files)", async () => {
    const dir = mkdtempSync(join(tmpdir(), "watch-"));
    const file = join(dir, "tokens");
    writeFileSync(file, "one a\n");
    let changes = 0;
    const stop = watchFiles([file], () => changes++, 20);
    writeFileSync(file, "one a\ntwo a\n");
    expect(await until(() => changes === 1)).toBe(true);
    writeFileSync(join(dir, "next"), "three a\n");
    renameSync(join(dir, "next"), file);
    expect(await until(() => changes === 2)).toBe(true);
    stop();
    writeFileSync(file, "");
    await new Promise((r) => setTimeout(r, 100));
    expect(changes).toBe(2);
  });
});
