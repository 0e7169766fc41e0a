export * from "./alert.js";
export * from "./audit-event.js";
export { deadLetterMessage } from "./bus/dead-letter.js";
export { KafkaBus, type KafkaBusOptions } from "./bus/kafka.js";
export type { MemoryBusOptions } from "./bus/memory.js";
export { MemoryBus } from "./bus/memory.js";
export type * from "./bus/types.js";
export * from "./config.js";
export { configurationMarkdown } from "./config-doc.js";
export { ecsEntities } from "./ecs.js";
export * from "./errors.js";
export * from "./logger.js";
export { requestFailed, requestOutcome } from "./outcome.js";
export { REDACTED, REDACTED_ANNOTATION, redactArgv, redactEvent, redactRequestURI, redactText, redactValue } from "./redact.js";
export {
  createOpsEndpoints,
  type OpsEndpoints,
  type OpsResponse,
  type RunnerOptions,
  type RunningStages,
  runStages,
  type Stage,
  type StageContext,
} from "./stage.js";
export { syntheticAuditEvent } from "./synthetic.js";
export { createBus } from "./wiring.js";
