export { createCertificateAuthority, issueCertificate, type Pem, writeKitCertificates } from "./certs.js";
export { RecentEvents } from "./dedup.js";
export { Ingestor, type IngestResult, TRUNCATED_ANNOTATION } from "./ingestor.js";
export { createIngestMetrics, type IngestMetrics } from "./metrics.js";
export { REDACTED, REDACTED_ANNOTATION, redactEvent, redactRequestURI } from "./redact.js";
export { createIngestServer, type IngestOptions } from "./server.js";
export { Spool, type SpoolEntry } from "./spool.js";
export { readTlsFiles, type TlsFiles, watchFiles } from "./tls.js";
export { parseTokenFile, TokenSet } from "./tokens.js";
