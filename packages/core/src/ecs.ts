import { type AuditEvent, trustedSourceIP } from "./audit-event.js";

/**
 * The ECS entity fields of an audit event, shared by alerts and raw event documents so both answer the same queries
 * (`source.ip`, `user_agent.original`, `orchestrator.*`, `related.*`).
 */
export function ecsEntities(event: AuditEvent) {
  const ip = trustedSourceIP(event);
  const users = [event.user.username, event.impersonatedUser?.username].filter((u): u is string => Boolean(u));
  return {
    ...(ip ? { source: { ip } } : {}),
    ...(event.userAgent ? { user_agent: { original: event.userAgent } } : {}),
    orchestrator: {
      type: "kubernetes" as const,
      cluster: { name: event.cluster ?? "default" },
      namespace: event.objectRef?.namespace,
      resource: { type: event.objectRef?.resource, name: event.objectRef?.name },
      api_version: event.objectRef?.apiVersion,
    },
    related: { user: users, ip: ip ? [ip] : [] },
  };
}
