import { isValid, parseISO } from "date-fns";
import { z } from "zod";

/**
 * The audit.k8s.io/v1 Event as the kube-apiserver sends it, also accepting the older v1beta1 shape found in
 * archives (it adds `timestamp` and `metadata.creationTimestamp`). Unknown fields are kept: we are a pipe, not a filter.
 */
export const AUDIT_STAGES = ["RequestReceived", "ResponseStarted", "ResponseComplete", "Panic"] as const;
export const AUDIT_LEVELS = ["None", "Metadata", "Request", "RequestResponse"] as const;

const UserInfoSchema = z.looseObject({
  username: z.string().optional(),
  uid: z.string().optional(),
  groups: z.array(z.string()).nullish(),
  extra: z.record(z.string(), z.array(z.string())).nullish(),
});

const ObjectReferenceSchema = z.looseObject({
  resource: z.string().optional(),
  namespace: z.string().optional(),
  name: z.string().optional(),
  uid: z.string().optional(),
  apiGroup: z.string().optional(),
  apiVersion: z.string().optional(),
  resourceVersion: z.string().optional(),
  subresource: z.string().optional(),
});

const StatusSchema = z.looseObject({
  code: z.number().int().optional(),
  status: z.string().optional(),
  reason: z.string().optional(),
  message: z.string().optional(),
});

/**
 * The shape of a strict RFC 3339 time (`2026-11-28T09:00:00.004000Z`: fractional seconds optional, up to the nine
 * digits of Go's RFC3339Nano; `Z` or an offset), as the apiserver writes it. Anything looser (`"1"`, RFC 1123 dates, a
 * bare date, no zone) is refused: Date.parse accepts them, and a timestamp that means something else to each reader lets
 * a client move event time. A leap second (`:60`) is refused too: Go never writes one and a Date cannot hold one. The
 * shape alone lets a day that does not exist through (`02-30`): use isRfc3339Time.
 */
export const RFC3339 =
  /^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])[Tt]([01]\d|2[0-3]):[0-5]\d:[0-5]\d(\.\d{1,9})?([Zz]|[+-]([01]\d|2[0-3]):[0-5]\d)$/;

/**
 * A strict RFC 3339 time of a day that exists. Cheap enough for the hot path (looksLikeAuditEvent): only a day past the
 * 28th asks the calendar. Upper-cased for date-fns, which reads ISO 8601's `T` and `Z` only (RFC 3339 allows `t`, `z`).
 */
export function isRfc3339Time(text: string): boolean {
  return RFC3339.test(text) && (Number(text.slice(8, 10)) <= 28 || isValid(parseISO(text.toUpperCase())));
}

/**
 * How far ahead of the receiving clock an event may be stamped and still drive event time (windows, storms;
 * K8S_AUDIT_MAX_CLOCK_SKEW_SECONDS). A later stamp is a broken node clock or a hostile client: the event is kept and
 * judged by the per-event rules, but it never moves a watermark, so one far-future event cannot blind the timed rules.
 */
export const DEFAULT_MAX_FUTURE_SKEW_MS = 5 * 60_000;

const Timestamp = z.string().refine(isRfc3339Time, { message: "not an RFC 3339 timestamp" });

export const AuditEventSchema = z
  .looseObject({
    kind: z.literal("Event").optional(),
    apiVersion: z.enum(["audit.k8s.io/v1", "audit.k8s.io/v1beta1"]).optional(),
    level: z.enum(AUDIT_LEVELS),
    auditID: z.string().min(1),
    stage: z.enum(AUDIT_STAGES),
    requestURI: z.string(),
    verb: z.string().min(1),
    user: UserInfoSchema,
    impersonatedUser: UserInfoSchema.nullish(),
    sourceIPs: z.array(z.string()).nullish(),
    userAgent: z.string().optional(),
    objectRef: ObjectReferenceSchema.nullish(),
    responseStatus: StatusSchema.nullish(),
    requestObject: z.unknown().optional(),
    responseObject: z.unknown().optional(),
    requestReceivedTimestamp: Timestamp.optional(),
    stageTimestamp: Timestamp.optional(),
    /** v1beta1 only */
    timestamp: Timestamp.optional(),
    annotations: z.record(z.string(), z.string()).nullish(),
    /** Stamped by the ingest: the cluster this event came from. Not part of the Kubernetes schema. */
    cluster: z.string().optional(),
  })
  .refine((e) => e.stageTimestamp !== undefined || e.timestamp !== undefined, {
    message: "event has neither stageTimestamp nor (v1beta1) timestamp",
    path: ["stageTimestamp"],
  });

export type AuditEvent = z.infer<typeof AuditEventSchema>;

export const EventListSchema = z.looseObject({
  kind: z.literal("EventList"),
  apiVersion: z.string().optional(),
  items: z.array(z.unknown()),
});

/**
 * A cheap structural check for events read back from our own events topic, which the ingest validated with the full
 * schema before producing them. It guards the detector against foreign or damaged records (they go to dead letters)
 * at a fraction of the cost of a second full validation on the hot path.
 */
export function looksLikeAuditEvent(value: unknown): value is AuditEvent {
  if (value === null || typeof value !== "object") return false;
  const e = value as Record<string, unknown>;
  const time = e.stageTimestamp ?? e.timestamp;
  return (
    typeof e.auditID === "string" &&
    typeof e.stage === "string" &&
    typeof e.verb === "string" &&
    typeof e.requestURI === "string" &&
    typeof e.level === "string" &&
    e.user !== null &&
    typeof e.user === "object" &&
    // The event time, strictly (replay reads archives through this check alone).
    typeof time === "string" &&
    isRfc3339Time(time)
  );
}

/** The event time: stageTimestamp, or for v1beta1 archives without it, timestamp. */
export function eventTime(event: AuditEvent): string {
  return (event.stageTimestamp ?? event.timestamp) as string;
}

/** Only the last sourceIP is trustworthy (earlier ones come from X-Forwarded-For, which clients set). */
export function trustedSourceIP(event: AuditEvent): string | undefined {
  const ips = event.sourceIPs;
  return ips && ips.length > 0 ? ips[ips.length - 1] : undefined;
}

/**
 * Identity of one request at one stage: the apiserver re-sends exactly this on retries. The received time is part of
 * it because the auditID alone comes from the client's Audit-ID header when it sends one, and can repeat.
 */
export function dedupKey(event: AuditEvent): string {
  return `${event.auditID}|${event.requestReceivedTimestamp ?? ""}|${event.stage}|${eventTime(event)}`;
}

export type BodyShape = "EventList" | "Event" | "array";

/**
 * Splits a webhook or file body into its items without validating them: an EventList, a single Event, or a JSON array.
 * Throws with a clear message for anything else.
 */
export function itemsOf(body: unknown): { shape: BodyShape; items: unknown[] } {
  if (Array.isArray(body)) return { shape: "array", items: body };
  if (body !== null && typeof body === "object") {
    const kind = (body as { kind?: unknown }).kind;
    if (kind === "EventList") {
      const list = EventListSchema.safeParse(body);
      if (!list.success) throw new Error("EventList without an items array");
      return { shape: "EventList", items: list.data.items };
    }
    if (kind === undefined || kind === "Event") return { shape: "Event", items: [body] };
    throw new Error(`expected an EventList, an Event or an array of Events, got kind ${JSON.stringify(kind)}`);
  }
  throw new Error(`expected an EventList, an Event or an array of Events, got ${body === null ? "null" : typeof body}`);
}

/** Each failing field as `path: message` (`(root)` for the value itself). */
export function issueLines(error: z.ZodError): string[] {
  return error.issues.map((i) => `${i.path.length ? i.path.join(".") : "(root)"}: ${i.message}`);
}

/** A one-line reason naming the first failing fields, for dead letters and 4xx bodies. */
export function describeIssues(error: z.ZodError, max = 3): string {
  return issueLines(error).slice(0, max).join("; ");
}

/** Why a value that failed looksLikeAuditEvent is not an audit event, in the full schema's words. */
export function whyNotAnAuditEvent(value: unknown): string {
  const error = AuditEventSchema.safeParse(value).error;
  return error ? describeIssues(error, 1) : "unrecognised record";
}
