import type { AuditEvent } from "./audit-event.js";

/**
 * How the request ended, the one definition every stage uses (ECS `event.outcome`): failure on a 4xx/5xx answer or
 * when authorization said forbid; unknown when the event carries neither a status nor a decision (a RequestReceived
 * stage, a Metadata-level event of an interrupted request); success otherwise.
 */
export function requestOutcome(event: Pick<AuditEvent, "responseStatus" | "annotations">): "success" | "failure" | "unknown" {
  const code = event.responseStatus?.code;
  const decision = event.annotations?.["authorization.k8s.io/decision"];
  if (decision === "forbid" || (code !== undefined && code >= 400)) return "failure";
  return code === undefined && decision === undefined ? "unknown" : "success";
}

/** The request failed (see requestOutcome); a missing status counts as success. */
export function requestFailed(event: Pick<AuditEvent, "responseStatus" | "annotations">): boolean {
  return requestOutcome(event) === "failure";
}
