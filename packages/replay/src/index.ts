export { groupByLog, type InputFile, resolveInputs } from "./files.js";
export { compileFilters, parseTime, type ReplayFilters } from "./filters.js";
export { decodeRecord, fromGkeLogEntry, type SourceFormat } from "./formats.js";
export {
  DEFAULT_REORDER_BUFFER,
  type FutureEvent,
  type MalformedRecord,
  type ReplayOptions,
  type ReplayProgress,
  type ReplaySummary,
  replay,
} from "./replay.js";
export { KafkaSink, WebhookSink, type WebhookSinkOptions } from "./sinks.js";
