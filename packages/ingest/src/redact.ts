/**
 * The ingest redacts with the one redactor of the pipeline (core's redact.ts, docs/redaction.md): the same code runs in
 * replay and in the alert builder. Kept as a module so the ingestor and the package's public names stay as they were.
 */
export { REDACTED, REDACTED_ANNOTATION, redactEvent, redactRequestURI, redactValue } from "@k8s-audit/core";
