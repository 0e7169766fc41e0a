export * from "./alert.js";
export * from "./audit-event.js";
export { KafkaBus, type KafkaBusOptions } from "./bus/kafka.js";
export { MemoryBus } from "./bus/memory.js";
export type * from "./bus/types.js";
export * from "./config.js";
export * from "./logger.js";
export { syntheticAuditEvent } from "./synthetic.js";
export { createBus } from "./wiring.js";
