export { apiserverTime, auditEvent, auditLogEvent, clusterAdminBinding, eventList, parsedAuditEvent } from "./audit-events.js";
export { CLI, type CliProcess, startCli } from "./cli.js";
export { alertDocCounts, countEvents, readWholeTopic, type TopicRecord } from "./counting.js";
export type { EngineAddresses } from "./engines.global-setup.js";
export { quietLogger, readTopic, storedAuditIDs, uniqueTopics } from "./kafka.js";
export {
  type ApiserverLoadOptions,
  acknowledged,
  apiserverLoad,
  type BatchOutcome,
  EventClock,
  type LoadReport,
  percentile,
  postLoad,
  routineEvent,
} from "./load.js";
export { findMarkers, markerForms, type PlantedCase, plantedCorpus } from "./planted-secrets.js";
