export { createIngestServer, type IngestOptions, type IngestResult } from "./server.js";
export { parseTokenFile, TokenSet } from "./tokens.js";
