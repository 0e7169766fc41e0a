import { ConfigSchema } from "./config.js";

/**
 * docs/configuration.md, generated from ConfigSchema so that a key's default and description live in one place (the
 * schema) and the page cannot drift from the code. `pnpm docs:config` writes it; a unit test fails when it is stale.
 */
export function configurationMarkdown(): string {
  // Parsing an empty environment yields every default exactly as the stages see it (after coercion and transforms).
  const defaults: Record<string, unknown> = ConfigSchema.parse({});
  const rows = Object.entries(ConfigSchema.shape).map(([key, schema]) => {
    const description = schema.description;
    if (!description) throw new Error(`ConfigSchema key ${key} has no description: add .describe("…") to it`);
    return `| \`${key}\` | ${renderDefault(key, defaults[key])} | ${cell(description)} |`;
  });
  return [
    "# Configuration",
    "",
    "<!-- Generated from ConfigSchema in packages/core/src/config.ts by `pnpm docs:config`; do not edit by hand. -->",
    "",
    "Every stage reads its settings from these environment variables (`packages/core/src/config.ts`). A CLI flag, where",
    "one exists, wins over its variable. An empty variable counts as unset. A bad value stops the process with a message",
    "naming the variable (values of keys that may hold a secret are not echoed).",
    "",
    "| variable | default | description |",
    "| --- | --- | --- |",
    ...rows,
    "",
  ].join("\n");
}

function renderDefault(key: string, value: unknown): string {
  if (value === undefined) return "unset";
  if (typeof value === "number" && key.endsWith("_BYTES")) return `\`${value}\`${byteSize(value)}`;
  if (Array.isArray(value)) return `\`${value.join(",")}\``;
  return `\`${String(value)}\``;
}

/** " (256 MiB)" for an exact multiple of a binary unit, so byte limits read as the sizes they were written as. */
function byteSize(bytes: number): string {
  for (const [unit, size] of [
    ["GiB", 1024 ** 3],
    ["MiB", 1024 ** 2],
    ["KiB", 1024],
  ] as const) {
    if (bytes >= size && bytes % size === 0) return ` (${bytes / size} ${unit})`;
  }
  return "";
}

/** A table cell: a pipe would end the cell early. */
function cell(text: string): string {
  return text.replaceAll("|", "\\|");
}
