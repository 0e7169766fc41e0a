/** `pnpm docs:config`: writes docs/configuration.md from ConfigSchema. */
import { writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { configurationMarkdown } from "./config-doc.js";

const target = fileURLToPath(new URL("../../../docs/configuration.md", import.meta.url));
writeFileSync(target, configurationMarkdown());
console.log(`wrote ${target}`);
