export type { Bucket, EventFacts, PartialRecord } from "./bucket.js";
export { ClusterWindows } from "./cluster-windows.js";
export { WindowEngine, type WindowEngineOptions } from "./engine.js";
export { GRACE_PERIOD_WINDOWS, isClosed } from "./grace.js";
export { PartialCountCache, partitionOf } from "./partial-cache.js";
export { MISSING_KEY_PART } from "./state.js";
export { sumGauges, type WindowGauges, type WindowStats } from "./stats.js";
export { StormAggregator, stormHeadId, stormKey } from "./storm.js";
export {
  decodePartial,
  decodeWindowsRecord,
  encodeBatch,
  encodePartial,
  encodeTick,
  type Tick,
  WINDOWS_RECORD_VERSION,
  type WindowsRecord,
} from "./wire.js";
