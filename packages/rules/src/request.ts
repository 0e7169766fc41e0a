import { type AuditEvent, requestFailed } from "@k8s-audit/core";

/**
 * What a request really did and who really did it, as rules see it. Rules, exceptions, windows and alerts read these
 * fields of an audit event as if it carried them (VIEW_FIELDS; the path visitor resolves them), computed from the raw
 * event without copying it:
 * - `user` is the effective identity (the impersonated user when there is one); `authenticatedUser` the one the
 *   apiserver authenticated. An impersonated request is judged by what it acted as, and named by both.
 * - `object` is the resulting object of a write: the response body when it is the object (RequestResponse level),
 *   else the request body when it is the whole object (create, update, server-side apply) or a sparse object built
 *   from the patch (merge and strategic patches already are one; a JSON patch's operations are laid out as one).
 *   For a refused request it is what was asked for. Absent when the policy logged neither body.
 * - `exec` is an exec request's command, decoded from its `command=` query parameters.
 * - `podSpecs` and `containers` gather every pod spec and every container of every kind the object carries, so a
 *   rule written once covers pods, every workload template, init and ephemeral containers alike.
 */
export interface ExecCommand {
  readonly command: string;
  readonly argv: readonly string[];
}

/** The effective identity: the impersonated user when there is one. */
export function effectiveUser(event: AuditEvent): AuditEvent["user"] {
  const impersonated = event.impersonatedUser;
  return impersonated?.username ? impersonated : event.user;
}

/** The identity the apiserver authenticated. */
export function authenticatedUser(event: AuditEvent): AuditEvent["user"] {
  return event.user;
}

interface Derived {
  object: unknown;
  podSpecs?: Record<string, unknown>[];
  containers?: Record<string, unknown>[];
  exec: ExecCommand | undefined;
}

/** The derived fields of the event just seen: every rule asks about the same event in turn, so one entry suffices. */
let derivedFor: AuditEvent | undefined;
let derivedValue: Derived = { object: undefined, exec: undefined };

function derived(event: AuditEvent): Derived {
  if (event === derivedFor) return derivedValue;
  const object = resultingObject(event);
  const podSpecs = object === undefined ? undefined : podSpecsOf(object, event.objectRef?.resource);
  derivedValue = {
    object,
    ...(podSpecs ? { podSpecs, containers: containersOfSpecs(podSpecs) } : {}),
    exec: event.objectRef?.subresource === "exec" ? execCommand(event.requestURI) : undefined,
  };
  derivedFor = event;
  return derivedValue;
}

/** Every container of every kind in every pod spec the request's object carries. */
export function containersOf(event: AuditEvent): readonly Record<string, unknown>[] | undefined {
  return derived(event).containers;
}

/**
 * The fields of the view, by the first segment of a rule's path. The path visitor resolves a path starting with one
 * of these through it (for audit events), so `user.username` is the effective identity everywhere a rule looks.
 */
export const VIEW_FIELDS: Readonly<Record<string, (event: AuditEvent) => unknown>> = {
  user: effectiveUser,
  authenticatedUser,
  object: (e) => derived(e).object,
  podSpecs: (e) => derived(e).podSpecs,
  containers: (e) => derived(e).containers,
  exec: (e) => derived(e).exec,
};

/**
 * One request's identity: cluster, auditID and the time it was received. The auditID alone comes from the client's
 * Audit-ID header when it sends one, so two requests can share it; a request's stages share all three.
 */
export function requestKey(event: AuditEvent): string {
  return `${event.cluster ?? "default"}\u0000${event.auditID}\u0000${event.requestReceivedTimestamp ?? event.timestamp ?? ""}`;
}

const ADMISSION_ANNOTATION_PREFIXES = [
  "pod-security.kubernetes.io/",
  "admission.k8s.io/",
  "validation.policy.admission.k8s.io/",
  "mutation.webhook.admission.k8s.io/",
];

/**
 * Why the cluster refused the request, when it was refused by authorization (forbid) or by admission (Pod Security,
 * webhooks, admission policies): the refusal reason; undefined for any other outcome. An attempt refused is still the
 * earliest sign of an attack.
 */
export function refusal(event: AuditEvent): string | undefined {
  const annotations = event.annotations ?? {};
  const code = event.responseStatus?.code;
  const message = event.responseStatus?.message;
  if (annotations["authorization.k8s.io/decision"] === "forbid") {
    return `forbidden by authorization${annotations["authorization.k8s.io/reason"] ? `: ${annotations["authorization.k8s.io/reason"]}` : ""}`;
  }
  if (code === undefined || code < 400 || code >= 500 || code === 401 || code === 404 || code === 409) return undefined;
  const byAdmission =
    Object.keys(annotations).some((k) => ADMISSION_ANNOTATION_PREFIXES.some((p) => k.startsWith(p))) ||
    (message !== undefined && /admission webhook|violates PodSecurity|denied request|ValidatingAdmissionPolicy/i.test(message));
  if (byAdmission) return `refused by admission${message ? `: ${message}` : ""}`;
  if (code === 403) return `forbidden${message ? `: ${message}` : ""}`;
  return undefined;
}

/**
 * Requests the apiserver logs at ResponseStarted as well (long-running: watches, exec, attach, port-forward, proxy),
 * and failed authentications, which it logs only there. Such a request counts once, at ResponseStarted.
 */
export function startsLongRunning(event: AuditEvent): boolean {
  if (event.verb === "watch") return true;
  const sub = event.objectRef?.subresource;
  return sub === "exec" || sub === "attach" || sub === "portforward" || sub === "proxy";
}

/** Windows count every request exactly once: at ResponseStarted when it has one, else at its last stage. */
export function countsInWindows(event: AuditEvent): boolean {
  if (event.stage === "ResponseStarted") return true;
  if (event.stage !== "ResponseComplete" && event.stage !== "Panic") return false;
  return !startsLongRunning(event);
}

const WRITE_VERBS = new Set(["create", "update", "patch", "apply"]);

function isObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}

/** A body that is an object of the API (not a Status, a list or a table). */
function isApiObject(value: unknown): value is Record<string, unknown> {
  if (!isObject(value)) return false;
  const kind = value.kind;
  return kind !== "Status" && kind !== "Table" && !(typeof kind === "string" && kind.endsWith("List")) && !("items" in value);
}

function resultingObject(event: AuditEvent): unknown {
  const { requestObject, responseObject } = event;
  const refused = requestFailed(event);
  if (!refused && WRITE_VERBS.has(event.verb) && isApiObject(responseObject)) return responseObject;
  if (Array.isArray(requestObject)) return jsonPatchAsObject(requestObject);
  if (isObject(requestObject)) return requestObject;
  if (!refused && isApiObject(responseObject)) return responseObject;
  return undefined;
}

/** Where pod specs sit: a pod, a workload's template, a CronJob's job template (and a PodTemplate's template). */
const POD_SPEC_PATHS: readonly (readonly string[])[] = [
  ["spec"],
  ["spec", "template", "spec"],
  ["template", "spec"],
  ["spec", "jobTemplate", "spec", "template", "spec"],
];
const CONTAINER_KINDS = ["containers", "initContainers", "ephemeralContainers"] as const;
const POD_SPEC_KEYS = [
  ...CONTAINER_KINDS,
  "volumes",
  "hostNetwork",
  "hostPID",
  "hostIPC",
  "nodeName",
  "serviceAccountName",
  "securityContext",
];

function podSpecsOf(object: unknown, resource: string | undefined): Record<string, unknown>[] | undefined {
  const specs: Record<string, unknown>[] = [];
  POD_SPEC_PATHS.forEach((path, i) => {
    let node: unknown = object;
    for (const key of path) node = isObject(node) ? node[key] : undefined;
    if (!isObject(node)) return;
    // A template's spec is always a pod spec (a patch may touch only its nodeSelector). A top-level spec is one for
    // pods, or when it has what only pod specs have: a Service's or a Deployment's own spec is not one.
    const topLevel = i === 0;
    if (!topLevel || resource === "pods" || (isObject(object) && object.kind === "Pod") || POD_SPEC_KEYS.some((k) => k in node))
      specs.push(node);
  });
  return specs.length ? specs : undefined;
}

function containersOfSpecs(specs: readonly Record<string, unknown>[]): Record<string, unknown>[] {
  const out: Record<string, unknown>[] = [];
  for (const spec of specs)
    for (const kind of CONTAINER_KINDS) {
      const list = spec[kind];
      if (Array.isArray(list)) for (const c of list) if (isObject(c)) out.push(c);
    }
  return out;
}

const MAX_PATCH_OPERATIONS = 10_000;
const MAX_PATH_SEGMENTS = 64;

/**
 * A JSON patch (RFC 6902) laid out as the sparse object its `add` and `replace` values describe: an operation that
 * adds `/spec/containers/0/securityContext/privileged: true` reads, to a rule, as a pod spec with a privileged
 * container; `/subjects/-` appends a subject. Without the stored object this is what the patch can tell.
 */
export function jsonPatchAsObject(operations: readonly unknown[]): Record<string, unknown> {
  const root: Record<string, unknown> = {};
  for (const op of operations.slice(0, MAX_PATCH_OPERATIONS)) {
    if (!isObject(op) || (op.op !== "add" && op.op !== "replace") || typeof op.path !== "string") continue;
    const segments = op.path
      .split("/")
      .slice(1)
      .map((s) => s.replaceAll("~1", "/").replaceAll("~0", "~"));
    if (segments.length === 0) {
      if (isObject(op.value)) Object.assign(root, op.value);
    } else if (segments.length <= MAX_PATH_SEGMENTS) writeAtPath(root, segments, op.value);
  }
  // Holes left by indexes past the end read as missing, as in the object they patch.
  return root;
}

type PatchNode = Record<string, unknown> | unknown[];

/** Writes `value` at the path, making what is missing on the way (an array where the next segment is an index). */
function writeAtPath(root: Record<string, unknown>, segments: readonly string[], value: unknown): void {
  let node: PatchNode = root;
  for (let i = 0; i < segments.length; i++) {
    const slot = slotOf(node, segments[i] as string);
    if (slot === undefined) return;
    const holder = node as Record<string | number, unknown>;
    if (i === segments.length - 1) {
      holder[slot] = value;
      return;
    }
    const child = holder[slot];
    if (!(isObject(child) || Array.isArray(child))) holder[slot] = /^(\d+|-)$/.test(segments[i + 1] as string) ? [] : {};
    node = holder[slot] as PatchNode;
  }
}

/** The array index or object key a path segment names in `node`; undefined when the patch cannot write there. */
function slotOf(node: PatchNode, segment: string): string | number | undefined {
  if (!Array.isArray(node)) return segment === "__proto__" || segment === "constructor" || segment === "prototype" ? undefined : segment;
  const asked = segment === "-" ? node.length : Number(segment);
  if (!Number.isInteger(asked)) return undefined;
  // An index far past the end (the apiserver refuses it, but a refused request is still judged) must not make an
  // array of millions of holes for every rule to walk: it appends instead.
  return asked > node.length + MAX_PATCH_OPERATIONS ? node.length : asked;
}

/** An exec's command: every `command=` query parameter, decoded, in order. */
export function execCommand(requestURI: string): ExecCommand | undefined {
  const query = requestURI.indexOf("?");
  if (query < 0) return undefined;
  const argv: string[] = [];
  for (const [name, value] of new URLSearchParams(requestURI.slice(query + 1))) if (name === "command") argv.push(value);
  return argv.length ? { command: argv.join(" "), argv } : undefined;
}
