export { createCertificateAuthority, issueCertificate, type Pem, writeKitCertificates } from "./certs.js";
export { ingestDedupKey, RecentEvents, warmRecentEvents } from "./dedup.js";
export { FUTURE_STAMP_ANNOTATION, Ingestor, type IngestResult } from "./ingestor.js";
export { type DepthCut, type DepthMarker, depthMarker, parseJsonGuarded } from "./json-guard.js";
export { createIngestMetrics, type IngestMetrics } from "./metrics.js";
export { REDACTED, REDACTED_ANNOTATION, redactEvent, redactRequestURI } from "./redact.js";
export { checkIngestConfig, LOOPBACK } from "./safe-defaults.js";
export { createIngestServer, type IngestOptions, watchTokenFile } from "./server.js";
export { DEFAULT_INGEST_SETTINGS, type IngestSettings, ingestSettings } from "./settings.js";
export { Spool, type SpoolEntry } from "./spool.js";
export { type IngestOverrides, IngestStage } from "./stage.js";
export { type Credential, certificateClusters, decideCluster, tokenClusters } from "./tenancy.js";
export { readTlsFiles, type TlsFiles, watchFiles } from "./tls.js";
export { ANY_CLUSTER, parseTokenFile, type TokenBinding, type TokenLine, TokenSet } from "./tokens.js";
export {
  deadLetterValue,
  ORIGINAL_BYTES_ANNOTATION,
  TRUNCATED_ANNOTATION,
  TRUNCATED_FIELDS_ANNOTATION,
  truncateEvent,
} from "./truncate.js";
