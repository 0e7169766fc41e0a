import { existsSync, readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { ConfigSchema, configurationMarkdown } from "../src/index.js";

const docPath = new URL("../../../docs/configuration.md", import.meta.url);

describe("docs/configuration.md", () => {
  it("describes every configuration key in the schema", () => {
    const undescribed = Object.entries(ConfigSchema.shape)
      .filter(([, schema]) => !schema.description?.trim())
      .map(([key]) => key);
    expect(undescribed).toEqual([]);
  });

  it("renders defaults from the schema", () => {
    const markdown = configurationMarkdown();
    expect(markdown).toContain("| `K8S_AUDIT_LISTEN` | `127.0.0.1:8080` |");
    expect(markdown).toContain("| `K8S_AUDIT_MAX_INFLIGHT_BYTES` | `268435456` (256 MiB) |");
    expect(markdown).toContain("| `KAFKA_BROKERS` | unset |");
  });

  it("is what `pnpm docs:config` generates", () => {
    const onDisk = existsSync(docPath) ? readFileSync(docPath, "utf8") : "(missing)";
    expect(onDisk, "docs/configuration.md differs from the schema: run `pnpm docs:config`").toBe(configurationMarkdown());
  });
});
