import type { AuditEvent } from "@k8s-audit/core";

/**
 * Oversize events (over K8S_AUDIT_MAX_EVENT_BYTES) lose bulk, not findings. The request and response bodies are cut in
 * ordered steps until the event fits; each step is tried on the response, then on the request, before the next step
 * (both bodies stay within one step of each other; at the end the request, the caller's own words, is kept longest):
 *
 *  1. `metadata.managedFields`, the last-applied annotation and `status` (CSR `status.conditions` and the status of review
 *     kinds stay; Table rows keep theirs);
 *  2. strings over 4 KiB become a 1 KiB prefix + marker (keys too), anything nested deeper than 64 levels a marker; then
 *     `data`/`binaryData`/`stringData` values become "" (keys stay: rules test key names);
 *  3. a List's `items` or a Table's `rows`: the leading ones that fit;
 *  4. annotation values cut to 256 chars and env values dropped, everything else kept (so fields a new rule reads stay);
 *  5. a skeleton of the fields rules read (RBAC rules, roleRef, subjects, webhooks, pod and template security fields,
 *     service and ingress exposure, label and annotation keys, data keys, JSON patch op/path); then a tighter one with a
 *     node budget; then the body goes (the response first).
 *
 * Fields outside the bodies are cut only when they are themselves the bulk (a megabyte requestURI, a deeply nested unknown
 * field). Every walk is iterative or depth-capped: bodies can be nested thousands deep. What was cut is listed, short, in
 * TRUNCATED_FIELDS_ANNOTATION.
 */
export const TRUNCATED_ANNOTATION = "audit.k8s.io/truncated";
export const TRUNCATED_FIELDS_ANNOTATION = "k8s-audit.io/truncated-fields";
export const ORIGINAL_BYTES_ANNOTATION = "k8s-audit.io/original-bytes";

type Json = Record<string, unknown>;
type BodyField = "requestObject" | "responseObject";
const isObject = (v: unknown): v is Json => v !== null && typeof v === "object" && !Array.isArray(v);

const LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration";
const DATA_FIELDS = ["data", "binaryData", "stringData"] as const;
const DATA_PATCH_PATH = /^\/(data|binaryData|stringData)(\/|$)/;
/** Strings longer than this are shortened in step 2, to KEEP_CHARS + a marker. */
const LONG_STRING = 4096;
const KEEP_CHARS = 1024;
/** Deeper than this (from the body's root) is replaced by DEEP: real objects are far shallower; JSON.stringify throws near 4,000. */
const MAX_DEPTH = 64;
const DEEP = "[k8s-audit: nested too deep, truncated]";
/** Longest truncated-fields annotation value. */
const FIELDS_MAX_BYTES = 1024;
/** The annotations this adds, beyond the fields list: keys, the flag, the original size, JSON punctuation. */
const ANNOTATION_OVERHEAD_BYTES = 160;
/** Kinds whose status is their point (and small): a review's verdict, an issued token (redacted), a Status's outcome. */
const KEEP_STATUS_KINDS = new Set([
  "TokenReview",
  "TokenRequest",
  "SubjectAccessReview",
  "SelfSubjectAccessReview",
  "LocalSubjectAccessReview",
  "SelfSubjectRulesReview",
  "SelfSubjectReview",
]);
const KEEP_STATUS_RESOURCES = new Set([
  "tokenreviews",
  "subjectaccessreviews",
  "selfsubjectaccessreviews",
  "localsubjectaccessreviews",
  "selfsubjectrulesreviews",
  "selfsubjectreviews",
]);
/** Event fields never cut short while anything else can be (identity, time, what happened). */
const CORE_FIELDS = new Set([
  "kind",
  "apiVersion",
  "level",
  "auditID",
  "stage",
  "verb",
  "requestReceivedTimestamp",
  "stageTimestamp",
  "timestamp",
  "cluster",
]);

/** Byte length of the JSON text, or Infinity when it cannot be serialised (nested too deep for JSON.stringify). */
function jsonBytes(value: unknown): number {
  if (value === undefined) return 0;
  try {
    return Buffer.byteLength(JSON.stringify(value) ?? "");
  } catch {
    return Number.POSITIVE_INFINITY;
  }
}

function shorten(s: string, keep: number): string {
  let end = keep;
  const code = s.charCodeAt(end - 1);
  if (code >= 0xd800 && code <= 0xdbff) end--; // do not split a surrogate pair
  return `${s.slice(0, end)}…[truncated, ${s.length} chars]`;
}

const SIMPLE_KEY = /^[A-Za-z0-9_$-]+$/;
/** The detector's path syntax: `a.b`, `a[key.with/dots]`, array elements as `[]`. */
function childPath(path: string, key: string | number): string {
  if (typeof key === "number") return `${path}[]`;
  if (SIMPLE_KEY.test(key)) return `${path}.${key}`;
  return `${path}[${key.length > 64 ? `${key.slice(0, 64)}…` : key}]`;
}

/** What was cut, in order, without repeats; rendered short. */
class Dropped {
  private readonly seen = new Set<string>();
  add(path: string): void {
    this.seen.add(path);
  }
  get size(): number {
    return this.seen.size;
  }
  render(): string {
    let out = "";
    let bytes = 0;
    let left = this.seen.size;
    for (const path of this.seen) {
      const more = `,+${left} more`;
      const piece = out ? `,${path}` : path;
      const pieceBytes = Buffer.byteLength(piece);
      if (bytes + pieceBytes + (left > 1 ? more.length : 0) > FIELDS_MAX_BYTES) return out ? `${out}${more}` : `+${left} more`;
      out += piece;
      bytes += pieceBytes;
      left--;
    }
    return out;
  }
}

/** The objects a body holds: itself, a List's items, a watch event's object (`rows` of Tables are left alone). */
function objectsOf(body: unknown, field: string): [Json, string][] {
  if (!isObject(body)) return [];
  const out: [Json, string][] = [[body, field]];
  if (Array.isArray(body.items)) for (const item of body.items) if (isObject(item)) out.push([item, `${field}.items[]`]);
  if (typeof body.type === "string" && isObject(body.object)) out.push([body.object, `${field}.object`]);
  return out;
}

function isCsr(o: Json, resource: string | undefined): boolean {
  return o.kind === "CertificateSigningRequest" || (o.kind === undefined && resource === "certificatesigningrequests");
}

// ---------------------------------------------------------------------------------------------------------------------
// Step 1: managedFields, last-applied, status

function stripMetadata(o: Json, path: string, dropped: Dropped): boolean {
  const meta = o.metadata;
  if (!isObject(meta)) return false;
  let changed = false;
  if ("managedFields" in meta) {
    delete meta.managedFields;
    dropped.add(`${path}.metadata.managedFields`);
    changed = true;
  }
  if (isObject(meta.annotations) && LAST_APPLIED in meta.annotations) {
    delete meta.annotations[LAST_APPLIED];
    dropped.add(`${path}.metadata.annotations[${LAST_APPLIED}]`);
    changed = true;
  }
  return changed;
}

function stripStatus(o: Json, path: string, resource: string | undefined, dropped: Dropped): boolean {
  // A Status (the answer to a delete or an error) has a string status: it is the outcome, keep it.
  if (!isObject(o.status)) return false;
  if (
    (typeof o.kind === "string" && KEEP_STATUS_KINDS.has(o.kind)) ||
    (o.kind === undefined && resource && KEEP_STATUS_RESOURCES.has(resource))
  )
    return false;
  if (isCsr(o, resource)) {
    // The approval subresource writes status.conditions: that is what matters about a CSR.
    const others = Object.keys(o.status).filter((k) => k !== "conditions");
    if (others.length === 0) return false;
    for (const k of others) {
      delete o.status[k];
      dropped.add(childPath(`${path}.status`, k));
    }
    return true;
  }
  delete o.status;
  dropped.add(`${path}.status`);
  return true;
}

function stripBulk(body: unknown, field: string, resource: string | undefined, dropped: Dropped): boolean {
  let changed = false;
  for (const [o, path] of objectsOf(body, field)) {
    if (stripMetadata(o, path, dropped)) changed = true;
    if (stripStatus(o, path, resource, dropped)) changed = true;
  }
  // Table rows: the embedded objects lose managedFields and last-applied only.
  if (isObject(body) && Array.isArray(body.rows))
    for (const row of body.rows)
      if (isObject(row) && isObject(row.object) && stripMetadata(row.object, `${field}.rows[].object`, dropped)) changed = true;
  return changed;
}

// ---------------------------------------------------------------------------------------------------------------------
// Step 2: long strings and deep nesting (one iterative walk), then data values

interface Frame {
  node: Json | unknown[];
  keys: string[] | undefined;
  next: number;
  depth: number;
  path: string;
}

/**
 * Shortens strings (and keys) longer than LONG_STRING and replaces containers deeper than MAX_DEPTH, in place, with an
 * explicit stack (memory bounded by the depth). Returns the new root (the root itself may be a long string).
 */
function shortenDeep(root: unknown, field: string, dropped: Dropped): { value: unknown; changed: boolean } {
  if (typeof root === "string") {
    if (root.length <= LONG_STRING) return { value: root, changed: false };
    dropped.add(field);
    return { value: shorten(root, KEEP_CHARS), changed: true };
  }
  if (root === null || typeof root !== "object") return { value: root, changed: false };
  let changed = false;
  const stack: Frame[] = [frameOf(root as Json | unknown[], 0, field)];
  while (stack.length > 0) {
    const top = stack[stack.length - 1] as Frame;
    const length = top.keys ? top.keys.length : (top.node as unknown[]).length;
    if (top.next >= length) {
      stack.pop();
      continue;
    }
    const i = top.next++;
    let key: string | number = top.keys ? (top.keys[i] as string) : i;
    const holder = top.node as Record<string | number, unknown>;
    if (typeof key === "string" && key.length > LONG_STRING) {
      key = shortenKey(holder, key, top.path, dropped);
      changed = true;
    }
    if (shortenValue(holder, key, top, stack, dropped)) changed = true;
  }
  return { value: root, changed };
}

function frameOf(node: Json | unknown[], depth: number, path: string): Frame {
  return { node, keys: Array.isArray(node) ? undefined : Object.keys(node), next: 0, depth, path };
}

/** Renames a long key to its shortened form (the value moves with it); returns the new key. */
function shortenKey(holder: Record<string | number, unknown>, key: string, path: string, dropped: Dropped): string {
  const short = shorten(key, KEEP_CHARS);
  holder[short] = holder[key];
  delete holder[key];
  dropped.add(`${path}[${key.slice(0, 64)}…]`);
  return short;
}

/**
 * One value under `top`: a long string is shortened and a container at MAX_DEPTH replaced by DEEP (both return true);
 * any other container is pushed to be walked.
 */
function shortenValue(
  holder: Record<string | number, unknown>,
  key: string | number,
  top: Frame,
  stack: Frame[],
  dropped: Dropped,
): boolean {
  const value = holder[key];
  if (typeof value === "string") {
    if (value.length <= LONG_STRING) return false;
    holder[key] = shorten(value, KEEP_CHARS);
  } else if (value !== null && typeof value === "object") {
    if (top.depth + 1 < MAX_DEPTH) {
      stack.push(frameOf(value as Json | unknown[], top.depth + 1, childPath(top.path, key)));
      return false;
    }
    holder[key] = DEEP;
  } else return false;
  dropped.add(childPath(top.path, key));
  return true;
}

function emptyValues(map: Json): boolean {
  let changed = false;
  for (const k of Object.keys(map)) {
    // null stays null: in a merge patch it removes the key, which is not the same as setting "".
    if (map[k] !== null && map[k] !== "") {
      map[k] = "";
      changed = true;
    }
  }
  return changed;
}

function emptyData(body: unknown, field: string, dropped: Dropped): boolean {
  let changed = false;
  if (Array.isArray(body)) {
    // JSON patch: operations writing under /data, /binaryData, /stringData.
    for (const op of body) {
      if (!isObject(op) || typeof op.path !== "string" || !DATA_PATCH_PATH.test(op.path) || !("value" in op)) continue;
      let emptied = false;
      if (isObject(op.value)) emptied = emptyValues(op.value);
      else if (op.value !== null && op.value !== "") {
        op.value = "";
        emptied = true;
      }
      if (emptied) {
        dropped.add(`${field}[].value`);
        changed = true;
      }
    }
    return changed;
  }
  for (const [o, path] of objectsOf(body, field)) {
    for (const f of DATA_FIELDS) {
      const map = o[f];
      if (isObject(map) && emptyValues(map)) {
        dropped.add(`${path}.${f}.*`);
        changed = true;
      }
    }
  }
  return changed;
}

// ---------------------------------------------------------------------------------------------------------------------
// Step 3: the leading items of a List / rows of a Table that fit

function trimList(body: unknown, field: string, budget: number, dropped: Dropped): boolean {
  if (!isObject(body)) return false;
  const key = Array.isArray(body.items) ? "items" : Array.isArray(body.rows) ? "rows" : undefined;
  if (!key) return false;
  const list = body[key] as unknown[];
  let used = jsonBytes({ ...body, [key]: [] });
  let kept = 0;
  for (const item of list) {
    const bytes = jsonBytes(item) + 1;
    if (used + bytes > budget) break;
    used += bytes;
    kept++;
  }
  if (kept === list.length) return false;
  body[key] = list.slice(0, kept);
  dropped.add(`${field}.${key}[${kept}:${list.length}]`);
  return true;
}

// ---------------------------------------------------------------------------------------------------------------------
// Steps 4 and 5: the body without its usual bulk; skeletons of what rules read

interface Limits {
  maxString: number;
  keepChars: number;
  maxArray: number;
  maxKeys: number;
  maxDepth: number;
  /** Values copied in all (a budget shared by the whole skeleton, spent in priority order). */
  maxNodes: number;
  /** Annotation values kept up to this length; 0: keys only. */
  annotationChars: number;
}

const GENEROUS: Limits = {
  maxString: LONG_STRING,
  keepChars: KEEP_CHARS,
  maxArray: 10_000,
  maxKeys: 10_000,
  maxDepth: 32,
  maxNodes: 200_000,
  annotationChars: 256,
};
/** Bounded: at most ~1,000 values of ≤ 256 chars under keys of ≤ 256 chars, well under a megabyte. */
const TIGHT: Limits = { maxString: 256, keepChars: 200, maxArray: 256, maxKeys: 256, maxDepth: 12, maxNodes: 1_000, annotationChars: 0 };

const CUT = Symbol("cut");
type Copied = unknown | typeof CUT;

/** Depth-, size- and budget-capped copies; every cut is named in `dropped`. */
class Capper {
  private nodes = 0;
  /** How many cuts this copy made (a Dropped path may repeat an earlier step's). */
  cuts = 0;
  constructor(
    readonly limits: Limits,
    private readonly dropped: Dropped,
    /** Copies leave out the usual bulk: annotation values past annotationChars, env values, managedFields. */
    private readonly bulkless = false,
  ) {}

  private cut(path: string): void {
    this.cuts++;
    this.dropped.add(path);
  }

  get exhausted(): boolean {
    return this.nodes >= this.limits.maxNodes;
  }

  copy(value: unknown, path: string, depth = 0): Copied {
    if (value === undefined) return undefined;
    if (this.nodes >= this.limits.maxNodes) {
      this.cut(path);
      return CUT;
    }
    this.nodes++;
    if (typeof value === "string") return this.string(value, path);
    if (value === null || typeof value !== "object") return value;
    if (depth >= this.limits.maxDepth) {
      this.cut(path);
      return DEEP;
    }
    if (Array.isArray(value)) return this.array(value, path, (v, p) => this.copy(v, p, depth + 1));
    const out: Json = {};
    const from = value as Json;
    let n = 0;
    for (const k of Object.keys(from)) {
      if (n >= this.limits.maxKeys) {
        this.cut(`${path}.*`);
        break;
      }
      const v = this.bulkless ? this.bulk(k, from[k], path, depth + 1) : this.copy(from[k], childPath(path, k), depth + 1);
      if (v === CUT) break;
      if (v !== undefined) out[this.string(k, path)] = v;
      n++;
    }
    return out;
  }

  /** A field of a bulkless copy: the usual bulk is left out (and said once), the rest copied. */
  private bulk(key: string, value: unknown, parent: string, depth: number): Copied {
    const path = childPath(parent, key);
    if (key === "managedFields" && parent.endsWith("metadata")) return undefined;
    if (key === "annotations" && parent.endsWith("metadata")) return this.keys(value, path, this.limits.annotationChars);
    if (key === "env" && Array.isArray(value)) {
      if (value.some((e) => isObject(e) && "value" in e)) this.cut(`${path}[].value`);
      return this.array(value, path, (e, p) => (isObject(e) ? this.pick({}, e, ["name", "valueFrom"], p) : this.copy(e, p, depth + 1)));
    }
    return this.copy(value, path, depth);
  }

  string(s: string, path: string): string {
    if (s.length <= this.limits.maxString) return s;
    this.cut(path);
    return shorten(s, this.limits.keepChars);
  }

  /** The leading elements that fit the limits, each shaped by `each`. */
  array(list: unknown[], path: string, each: (v: unknown, path: string) => Copied): unknown[] {
    const out: unknown[] = [];
    const n = Math.min(list.length, this.limits.maxArray);
    for (let i = 0; i < n; i++) {
      const v = each(list[i], `${path}[]`);
      if (v === CUT) break;
      out.push(v);
    }
    if (out.length < list.length) this.cut(`${path}[${out.length}:${list.length}]`);
    return out;
  }

  /** Copies the named fields of `from` that are present into `to`, in order. */
  pick(to: Json, from: unknown, fields: readonly string[], path: string): Json {
    if (!isObject(from)) return to;
    for (const f of fields) {
      if (!(f in from)) continue;
      const v = this.copy(from[f], childPath(path, f));
      if (v === CUT) break;
      if (v !== undefined) to[f] = v;
    }
    return to;
  }

  /** A map's keys with "" values (nulls stay null). */
  keys(map: unknown, path: string, valueChars: number): Copied {
    if (!isObject(map)) return this.copy(map, path);
    const out: Json = {};
    let n = 0;
    for (const k of Object.keys(map)) {
      if (n >= this.limits.maxKeys || this.nodes >= this.limits.maxNodes) {
        this.cut(`${path}.*`);
        break;
      }
      this.nodes++;
      const v = map[k];
      let kept: unknown = "";
      if (v === null) kept = null;
      else if (valueChars > 0 && typeof v === "string") {
        kept = v;
        if (v.length > valueChars) {
          kept = shorten(v, valueChars);
          this.cut(`${path}.*`);
        }
      }
      out[this.string(k, path)] = kept;
      n++;
    }
    return out;
  }
}

const set = (to: Json, key: string, v: Copied): void => {
  if (v !== undefined && v !== CUT) to[key] = v;
};

const RBAC_FIELDS = ["roleRef", "subjects", "rules", "aggregationRule"] as const;
const WEBHOOK_FIELDS = [
  "name",
  "clientConfig",
  "rules",
  "failurePolicy",
  "matchPolicy",
  "namespaceSelector",
  "objectSelector",
  "sideEffects",
  "matchConditions",
  "timeoutSeconds",
] as const;
const POD_SCALARS = [
  "hostNetwork",
  "hostPID",
  "hostIPC",
  "hostUsers",
  "shareProcessNamespace",
  "serviceAccountName",
  "serviceAccount",
  "automountServiceAccountToken",
  "nodeName",
  "priorityClassName",
  "runtimeClassName",
] as const;
const POD_COPIED = ["securityContext", "nodeSelector", "tolerations", "affinity"] as const;
const CONTAINER_KINDS = ["containers", "initContainers", "ephemeralContainers"] as const;
const CONTAINER_FIELDS = ["name", "image", "targetContainerName", "command", "args", "securityContext"] as const;
const PORT_FIELDS = ["name", "containerPort", "hostPort", "hostIP", "protocol"] as const;
const MOUNT_FIELDS = ["name", "mountPath", "subPath", "readOnly"] as const;
const SERVICE_FIELDS = ["type", "externalIPs", "externalName", "loadBalancerIP", "loadBalancerSourceRanges"] as const;
const SERVICE_PORT_FIELDS = ["name", "port", "targetPort", "nodePort", "protocol"] as const;
const CSR_FIELDS = ["signerName", "usages", "username", "groups", "expirationSeconds"] as const;
const STATUS_KIND_FIELDS = ["message", "reason", "code"] as const;

function metaSkeleton(c: Capper, meta: unknown, path: string): Json | undefined {
  if (!isObject(meta)) return undefined;
  return c.pick({}, meta, ["name", "generateName", "namespace"], path);
}

/** Labels (values kept: rules read them) and annotation keys, added last: they are the usual padding. */
function metaLabels(c: Capper, out: Json | undefined, meta: unknown, path: string): void {
  if (!out || !isObject(meta) || c.exhausted) return;
  set(out, "labels", c.copy(meta.labels, `${path}.labels`));
  if ("annotations" in meta) set(out, "annotations", c.keys(meta.annotations, `${path}.annotations`, c.limits.annotationChars));
}

function podSpec(c: Capper, spec: unknown, path: string): Json {
  const out: Json = {};
  if (!isObject(spec)) return out;
  c.pick(out, spec, POD_SCALARS, path);
  c.pick(out, spec, POD_COPIED, path);
  for (const kind of CONTAINER_KINDS) {
    const list = spec[kind];
    if (!Array.isArray(list)) continue;
    out[kind] = c.array(list, `${path}.${kind}`, (container, p) => {
      if (!isObject(container)) return c.copy(container, p);
      const x = c.pick({}, container, CONTAINER_FIELDS, p);
      if (Array.isArray(container.ports)) x.ports = c.array(container.ports, `${p}.ports`, (port, pp) => c.pick({}, port, PORT_FIELDS, pp));
      if (Array.isArray(container.volumeMounts))
        x.volumeMounts = c.array(container.volumeMounts, `${p}.volumeMounts`, (m, pm) => c.pick({}, m, MOUNT_FIELDS, pm));
      if (Array.isArray(container.env))
        x.env = c.array(container.env, `${p}.env`, (env, pe) => (isObject(env) ? c.pick({}, env, ["name"], pe) : c.copy(env, pe)));
      return x;
    });
  }
  if (Array.isArray(spec.volumes)) out.volumes = c.array(spec.volumes, `${path}.volumes`, (v, p) => c.pick({}, v, ["name", "hostPath"], p));
  return out;
}

function templateSkeleton(c: Capper, template: unknown, path: string): Json | undefined {
  if (!isObject(template)) return undefined;
  const out: Json = {};
  const meta = metaSkeleton(c, template.metadata, `${path}.metadata`);
  if (meta) out.metadata = meta;
  out.spec = podSpec(c, template.spec, `${path}.spec`);
  metaLabels(c, meta, template.metadata, `${path}.metadata`);
  return out;
}

function specSkeleton(c: Capper, spec: unknown, path: string): Copied {
  if (!isObject(spec)) return c.copy(spec, path);
  // Pods (and merge patches of pods) carry the pod fields directly; workloads in a template; CronJobs one level deeper.
  const out = podSpec(c, spec, path);
  set(out, "template", templateSkeleton(c, spec.template, `${path}.template`));
  if (isObject(spec.jobTemplate)) {
    const jt = spec.jobTemplate;
    const jobSpec: Json = {};
    set(jobSpec, "template", templateSkeleton(c, isObject(jt.spec) ? jt.spec.template : undefined, `${path}.jobTemplate.spec.template`));
    out.jobTemplate = { spec: jobSpec };
  }
  // Services and ingresses: how the workload is exposed.
  c.pick(out, spec, SERVICE_FIELDS, path);
  if (Array.isArray(spec.ports)) out.ports = c.array(spec.ports, `${path}.ports`, (p, pp) => c.pick({}, p, SERVICE_PORT_FIELDS, pp));
  if (Array.isArray(spec.tls)) out.tls = c.array(spec.tls, `${path}.tls`, (t, p) => c.pick({}, t, ["hosts", "secretName"], p));
  if (Array.isArray(spec.rules)) out.rules = c.array(spec.rules, `${path}.rules`, (r, p) => c.pick({}, r, ["host"], p));
  // An ingress without rules routes everything to its default backend (ingress.without_tls reads it).
  c.pick(out, spec, ["defaultBackend", "backend"], path);
  // CertificateSigningRequests: who asks for what.
  c.pick(out, spec, CSR_FIELDS, path);
  return out;
}

function objectSkeleton(c: Capper, o: unknown, path: string, resource: string | undefined): Copied {
  if (!isObject(o)) return c.copy(o, path);
  const out: Json = c.pick({}, o, ["apiVersion", "kind", "type"], path);
  const meta = metaSkeleton(c, o.metadata, `${path}.metadata`);
  if (meta) out.metadata = meta;
  c.pick(out, o, RBAC_FIELDS, path);
  if (Array.isArray(o.webhooks)) out.webhooks = c.array(o.webhooks, `${path}.webhooks`, (w, p) => c.pick({}, w, WEBHOOK_FIELDS, p));
  if ("spec" in o) set(out, "spec", specSkeleton(c, o.spec, `${path}.spec`));
  // A PodTemplate holds its pod template at the top.
  if (isObject(o.template)) set(out, "template", templateSkeleton(c, o.template, `${path}.template`));
  if (typeof o.status === "string") c.pick(out, o, ["status", ...STATUS_KIND_FIELDS], path);
  else if (isObject(o.status)) {
    if (isCsr(o, resource)) set(out, "status", c.pick({}, o.status, ["conditions"], `${path}.status`));
    else if ((typeof o.kind === "string" && KEEP_STATUS_KINDS.has(o.kind)) || (resource && KEEP_STATUS_RESOURCES.has(resource)))
      set(out, "status", c.copy(o.status, `${path}.status`));
  }
  metaLabels(c, meta, o.metadata, `${path}.metadata`);
  for (const f of DATA_FIELDS) if (f in o && !c.exhausted) set(out, f, c.keys(o[f], `${path}.${f}`, 0));
  return out;
}

/** The whole body without its usual bulk (annotation values, env values), capped: every field a rule may read stays. */
function bulkless(body: unknown, field: string, dropped: Dropped): { value: unknown; changed: boolean } {
  const c = new Capper(GENEROUS, dropped, true);
  const out = c.copy(body, field);
  // Nothing left out: keep the body as it was (and skip measuring it again).
  return c.cuts === 0 ? { value: body, changed: false } : { value: out === CUT ? null : out, changed: true };
}

/** The rule-relevant fields of a body: one object, a List, a Table, a watch event, or a JSON patch. */
function skeleton(body: unknown, field: string, resource: string | undefined, limits: Limits, dropped: Dropped): unknown {
  dropped.add(`${field}(${limits === TIGHT ? "tight skeleton" : "skeleton"})`);
  const c = new Capper(limits, dropped);
  let out: Copied;
  if (Array.isArray(body)) {
    out = c.array(body, field, (op, p) => (isObject(op) ? c.pick({}, op, ["op", "path", "from", "value"], p) : c.copy(op, p)));
  } else if (isObject(body) && Array.isArray(body.items)) {
    out = c.pick({}, body, ["apiVersion", "kind"], field);
    (out as Json).items = c.array(body.items, `${field}.items`, (item, p) => objectSkeleton(c, item, p, resource));
  } else if (isObject(body) && Array.isArray(body.rows)) {
    out = c.pick({}, body, ["apiVersion", "kind"], field);
    (out as Json).rows = c.array(body.rows, `${field}.rows`, (row, p) => {
      if (!isObject(row)) return c.copy(row, p);
      const r = c.pick({}, row, ["cells"], p);
      set(r, "object", objectSkeleton(c, row.object, `${p}.object`, resource));
      return r;
    });
  } else if (isObject(body) && typeof body.type === "string" && isObject(body.object)) {
    out = { type: c.string(body.type, `${field}.type`) };
    set(out as Json, "object", objectSkeleton(c, body.object, `${field}.object`, resource));
  } else {
    out = objectSkeleton(c, body, field, resource);
  }
  return out === CUT ? null : out;
}

// ---------------------------------------------------------------------------------------------------------------------
// The event outside its bodies

/** Only the last sourceIPs entry is trustworthy: keep the tail. */
function capSourceIPs(ips: unknown, max: number, dropped: Dropped): unknown {
  if (!Array.isArray(ips) || ips.length <= max) return ips;
  dropped.add(`sourceIPs[0:${ips.length - max}]`);
  return ips.slice(ips.length - max);
}

function capRest(event: Json, limits: Limits, dropped: Dropped): boolean {
  let changed = false;
  for (const key of Object.keys(event)) {
    if (key === "requestObject" || key === "responseObject" || CORE_FIELDS.has(key)) continue;
    // Each field gets its own budget: a bulky one must not starve objectRef or user.
    const c = new Capper(limits, dropped);
    const value = key === "sourceIPs" ? capSourceIPs(event[key], Math.min(limits.maxArray, 64), dropped) : event[key];
    const capped = key === "annotations" ? c.keys(value, key, limits.maxString) : c.copy(value, key);
    if (c.cuts > 0 || value !== event[key]) {
      event[key] = capped === CUT ? undefined : capped;
      changed = true;
    }
  }
  return changed;
}

/** The event reduced to who did what to which object, when, and with which outcome. */
function minimalEvent(event: Json, dropped: Dropped): Json {
  const c = new Capper(TIGHT, dropped);
  const out: Json = {};
  for (const key of CORE_FIELDS) if (key in event) set(out, key, c.copy(event[key], key));
  set(out, "requestURI", c.copy(event.requestURI, "requestURI"));
  set(out, "user", c.pick({}, event.user, ["username", "uid"], "user"));
  set(out, "objectRef", c.copy(event.objectRef, "objectRef"));
  set(out, "responseStatus", c.pick({}, event.responseStatus, ["code", "status", "reason"], "responseStatus"));
  set(out, "sourceIPs", capSourceIPs(event.sourceIPs, 1, dropped));
  for (const key of Object.keys(event)) if (!(key in out) && key !== "annotations") dropped.add(key);
  return out;
}

// ---------------------------------------------------------------------------------------------------------------------

type Step = (body: unknown, field: BodyField) => { value: unknown; changed: boolean };

/**
 * The event cut down until its JSON is at most maxBytes, as the serialised value to store. The event is modified in
 * place (it was just parsed from the request and is ours). `originalBytes` is unknown when the event could not even be
 * serialised (nested deeper than JSON.stringify goes).
 */
export function truncateEvent(event: AuditEvent, maxBytes: number, originalBytes?: number): string {
  const e = { ...(event as Json) };
  const dropped = new Dropped();
  const resource = isObject(e.objectRef) && typeof e.objectRef.resource === "string" ? e.objectRef.resource : undefined;
  const annotations = (): Record<string, string> => ({
    ...(isObject(e.annotations) ? (e.annotations as Record<string, string>) : {}),
    [TRUNCATED_ANNOTATION]: "true",
    ...(originalBytes !== undefined ? { [ORIGINAL_BYTES_ANNOTATION]: String(originalBytes) } : {}),
    ...(dropped.size > 0 ? { [TRUNCATED_FIELDS_ANNOTATION]: dropped.render() } : {}),
  });
  const restBytes = () => jsonBytes({ ...e, requestObject: undefined, responseObject: undefined });
  const sizes = { requestObject: jsonBytes(e.requestObject), responseObject: jsonBytes(e.responseObject) };
  let rest = restBytes();
  const bodyBytes = (f: BodyField) => (e[f] === undefined ? 0 : sizes[f] + f.length + 4);
  const overhead = () => Buffer.byteLength(dropped.render()) + ANNOTATION_OVERHEAD_BYTES;
  const estimate = () => rest + bodyBytes("requestObject") + bodyBytes("responseObject") + overhead();

  /** The final text when it fits (checked exactly), else undefined. */
  const attempt = (): string | undefined => {
    if (estimate() > maxBytes) return undefined;
    const text = serialise({ ...e, annotations: annotations() });
    return text !== undefined && Buffer.byteLength(text) <= maxBytes ? text : undefined;
  };

  // Outside the bodies, only fields that are themselves the bulk are cut (and before the bodies are).
  const restSteps = [() => capRest(e, GENEROUS, dropped), () => capRest(e, TIGHT, dropped)];
  while (rest > maxBytes / 2 && restSteps.length > 0) {
    (restSteps.shift() as () => boolean)();
    rest = restBytes();
  }

  const steps: [Step, BodyField][] = [];
  const inPlace =
    (fn: (body: unknown, field: BodyField) => boolean): Step =>
    (body, field) => ({ value: body, changed: fn(body, field) });
  const strip = inPlace((body, field) => stripBulk(body, field, resource, dropped));
  const deep: Step = (body, field) => shortenDeep(body, field, dropped);
  const data = inPlace((body, field) => emptyData(body, field, dropped));
  const list = inPlace((body, field) => {
    const other: BodyField = field === "requestObject" ? "responseObject" : "requestObject";
    // (64: the items entry this adds to the fields list)
    return trimList(body, field, maxBytes - overhead() - 64 - rest - bodyBytes(other) - field.length - 4, dropped);
  });
  const lean: Step = (body, field) => bulkless(body, field, dropped);
  const skel: Step = (body, field) => ({ value: skeleton(body, field, resource, GENEROUS, dropped), changed: true });
  const tight: Step = (body, field) => ({ value: skeleton(body, field, resource, TIGHT, dropped), changed: true });
  const drop: Step = (_body, field) => {
    dropped.add(field);
    return { value: undefined, changed: true };
  };
  // Response, then request, at every step; the request is dropped last (the detector falls back to it).
  for (const step of [strip, deep, data, list, lean, skel, tight, drop]) steps.push([step, "responseObject"], [step, "requestObject"]);

  let text = attempt();
  for (const [step, field] of steps) {
    if (text !== undefined) return text;
    if (e[field] === undefined || e[field] === null) continue;
    const { value, changed } = step(e[field], field);
    if (!changed) continue;
    if (value === undefined) delete e[field];
    else e[field] = value;
    // Both: the bodies may share objects (callers other than JSON.parse), so a cut in one can shrink the other.
    sizes.requestObject = jsonBytes(e.requestObject);
    sizes.responseObject = jsonBytes(e.responseObject);
    text = attempt();
  }
  for (const restStep of restSteps) {
    if (text !== undefined) return text;
    restStep();
    rest = restBytes();
    text = attempt();
  }
  if (text !== undefined) return text;
  const minimal = minimalEvent(e, dropped);
  return (
    serialise({ ...minimal, annotations: annotations() }) ??
    JSON.stringify({ ...minimal, annotations: { [TRUNCATED_ANNOTATION]: "true", [TRUNCATED_FIELDS_ANNOTATION]: "*" } })
  );
}

function serialise(value: unknown): string | undefined {
  try {
    return JSON.stringify(value);
  } catch {
    return undefined;
  }
}

/**
 * A dead letter's value: the raw item, or when it is too large (or too deep) to store, a capped copy of it. Dead
 * letters are for people; a fitting copy beats a batch the broker refuses.
 */
export function deadLetterValue(item: unknown, maxBytes: number): { value: string; truncated: boolean } {
  const text = serialise(item);
  if (text !== undefined && Buffer.byteLength(text) <= maxBytes) return { value: text, truncated: false };
  const dropped = new Dropped();
  for (const limits of [GENEROUS, TIGHT]) {
    const capped = new Capper(limits, dropped).copy(item, "item");
    const value = serialise(capped === CUT ? null : capped);
    if (value !== undefined && Buffer.byteLength(value) <= maxBytes) return { value, truncated: true };
  }
  return { value: "null", truncated: true };
}
