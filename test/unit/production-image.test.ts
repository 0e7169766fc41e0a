import { execFileSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";

const root = new URL("../..", import.meta.url).pathname;
const dockerfile = readFileSync(join(root, "packages/cli/Dockerfile"), "utf8");

/**
 * No Docker daemon runs in CI, so the image is checked by its parts: the Dockerfile's choices, and the very command
 * its build stage runs (`pnpm deploy --prod` of the CLI), whose output must run on its own without devDependencies.
 */
describe("production image", () => {
  const out = join(mkdtempSync(join(tmpdir(), "k8s-audit-image-")), "app");
  afterAll(() => rmSync(out, { recursive: true, force: true }));

  it("is a deploy of the CLI's production dependencies, running as a numeric non-root user with a writable volume", () => {
    expect(dockerfile).toMatch(/pnpm --filter @k8s-audit\/cli deploy --prod --legacy \/app/);
    expect(dockerfile).toMatch(/^USER 1000:1000$/m);
    expect(dockerfile).toMatch(/K8S_AUDIT_SPOOL_DIR=\/var\/lib\/k8s-audit\/spool/);
    expect(dockerfile).toMatch(/^VOLUME \["\/var\/lib\/k8s-audit"\]$/m);
    expect(dockerfile).not.toMatch(/--prod=false/);
  });

  it("runs from the deployed folder alone, with no test or build tools in it", { timeout: 180_000 }, () => {
    execFileSync("pnpm", ["--filter", "@k8s-audit/cli", "deploy", "--prod", "--legacy", out], { cwd: root, stdio: "pipe" });
    const installed = readdirSync(join(out, "node_modules/.pnpm")).join("\n");
    for (const devOnly of ["vitest@", "@biomejs+biome@", "typescript@", "vite@"]) expect(installed).not.toContain(devOnly);
    const listed = execFileSync("node", [join(out, "bin/k8s-audit.mjs"), "rules", "list"], { cwd: out, encoding: "utf8" });
    expect(listed).toMatch(/\d+ rules/);
  });
});
