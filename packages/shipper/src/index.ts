export { type BulkDocument, type BulkOutcome, bulkCreate } from "./bulk.js";
export { createElasticsearchClient } from "./client.js";
export {
  ELASTIC_RULE_FIELDS,
  EVENTS_DATASET,
  ensureRawEventTemplate,
  eventsDataStream,
  RAW_EVENT_MAPPINGS,
  rawEventDocument,
} from "./raw-events.js";
export { type ShipperServiceOptions, startShipperService } from "./service.js";
export { detectLifecycle, KIBANA_OBJECTS_FILE, type LifecycleMode, PROMOTION_RULE_FILE, setupElasticsearch, setupKibana } from "./setup.js";
export { ShipperStage } from "./stage.js";
export { ALERT_MAPPINGS, ALERTS_DATASET, alertsDataStream, ensureAlertTemplate, putDataStreamTemplate } from "./templates.js";
