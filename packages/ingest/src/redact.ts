/**
 * Removes secret values before anything leaves the ingest (Kafka, dead letters, logs). Keys are kept so rules and
 * analysts still see *which* keys changed; every redacted place is listed in the event's REDACTED_ANNOTATION.
 */
export const REDACTED = "[REDACTED]";
export const REDACTED_ANNOTATION = "k8s-audit.io/redacted";

const LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration";
const SECRET_DATA_FIELDS = ["data", "stringData"] as const;
/** Query parameters that carry credentials when clients put them in URLs. */
const CREDENTIAL_PARAMS = /^(access_token|token|id_token|refresh_token|password|passwd|secret|client_secret|api_key|apikey)$/i;

type Json = Record<string, unknown>;
const isObject = (v: unknown): v is Json => v !== null && typeof v === "object" && !Array.isArray(v);

function redactValues(map: unknown): boolean {
  if (!isObject(map)) return false;
  let changed = false;
  for (const key of Object.keys(map)) {
    if (map[key] !== REDACTED) {
      map[key] = REDACTED;
      changed = true;
    }
  }
  return changed;
}

/** A Secret (or a patch of one): data/stringData values and the last-applied annotation, which holds a full copy. */
function redactSecretObject(obj: Json, path: string, out: string[]): void {
  for (const field of SECRET_DATA_FIELDS) {
    if (field in obj) {
      if (isObject(obj[field])) {
        if (redactValues(obj[field])) out.push(`${path}.${field}`);
      } else if (obj[field] !== null && obj[field] !== REDACTED) {
        obj[field] = REDACTED;
        out.push(`${path}.${field}`);
      }
    }
  }
  const annotations = isObject(obj.metadata) ? obj.metadata.annotations : undefined;
  if (isObject(annotations) && typeof annotations[LAST_APPLIED] === "string") {
    annotations[LAST_APPLIED] = REDACTED;
    out.push(`${path}.metadata.annotations.${LAST_APPLIED}`);
  }
}

/** RFC 6902 JSON patch operations against /data, /stringData or the last-applied annotation. */
function redactJsonPatch(ops: unknown[], path: string, out: string[]): void {
  ops.forEach((op, i) => {
    if (!isObject(op) || !("value" in op) || typeof op.path !== "string") return;
    const p = op.path;
    if (/^\/(data|stringData)(\/|$)/.test(p) || p.includes("last-applied-configuration")) {
      if (isObject(op.value)) redactValues(op.value);
      else op.value = REDACTED;
      out.push(`${path}[${i}].value`);
    }
  });
}

/** Secret bodies: one object, a list (items), a watch event ({type, object}), or a patch document. */
function redactSecretBody(body: unknown, path: string, out: string[]): void {
  if (Array.isArray(body)) {
    redactJsonPatch(body, path, out);
    return;
  }
  if (!isObject(body)) return;
  if (Array.isArray(body.items)) {
    body.items.forEach((item, i) => {
      if (isObject(item)) redactSecretObject(item, `${path}.items[${i}]`, out);
    });
  }
  if (isObject(body.object)) redactSecretObject(body.object, `${path}.object`, out);
  redactSecretObject(body, path, out);
}

/** Any Secret nested anywhere (e.g. a List of mixed kinds, a watch event): found by its kind. */
function redactNestedSecrets(value: unknown, path: string, out: string[], depth = 0): void {
  if (depth > 32) return;
  if (Array.isArray(value)) {
    value.forEach((v, i) => {
      redactNestedSecrets(v, `${path}[${i}]`, out, depth + 1);
    });
    return;
  }
  if (!isObject(value)) return;
  if (value.kind === "Secret") redactSecretObject(value, path, out);
  for (const [k, v] of Object.entries(value))
    if (v !== null && typeof v === "object") redactNestedSecrets(v, `${path}.${k}`, out, depth + 1);
}

function redactTokenFields(body: unknown, path: string, fields: string[][], out: string[]): void {
  for (const field of fields) {
    let node: unknown = body;
    for (const segment of field.slice(0, -1)) node = isObject(node) ? node[segment] : undefined;
    const last = field[field.length - 1] as string;
    if (isObject(node) && typeof node[last] === "string" && node[last] !== REDACTED) {
      node[last] = REDACTED;
      out.push(`${path}.${field.join(".")}`);
    }
  }
}

export function redactRequestURI(uri: string): { uri: string; redacted: boolean } {
  const q = uri.indexOf("?");
  if (q < 0) return { uri, redacted: false };
  let redacted = false;
  const query = uri
    .slice(q + 1)
    .split("&")
    .map((pair) => {
      const eq = pair.indexOf("=");
      const name = decodeURIComponentSafe(eq < 0 ? pair : pair.slice(0, eq));
      if (eq >= 0 && CREDENTIAL_PARAMS.test(name)) {
        redacted = true;
        return `${pair.slice(0, eq)}=${encodeURIComponent(REDACTED)}`;
      }
      return pair;
    })
    .join("&");
  return { uri: `${uri.slice(0, q)}?${query}`, redacted };
}

function decodeURIComponentSafe(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

/**
 * Redacts in place (the object was just parsed from the request and is ours) and returns the redacted paths. Works on
 * any JSON value, so invalid items bound for the dead-letter topic are redacted too.
 */
export function redactEvent(item: unknown): string[] {
  if (!isObject(item)) return [];
  const out: string[] = [];
  const ref = isObject(item.objectRef) ? item.objectRef : {};
  const coreGroup = ref.apiGroup === undefined || ref.apiGroup === "";
  const isSecrets = ref.resource === "secrets" && coreGroup;
  for (const bodyField of ["requestObject", "responseObject"] as const) {
    const body = item[bodyField];
    if (body === undefined || body === null) continue;
    if (isSecrets) redactSecretBody(body, bodyField, out);
    // A generic v1 List may mix kinds (kubectl apply -f of a List); walk it for Secrets. Other bodies are not walked:
    // that would cost a full traversal of every large RequestResponse body.
    else if (isObject(body) && body.kind === "List") redactNestedSecrets(body, bodyField, out);
    if (ref.resource === "serviceaccounts" && ref.subresource === "token") {
      redactTokenFields(body, bodyField, [["status", "token"]], out);
    }
    if (ref.resource === "tokenreviews" || (isObject(body) && body.kind === "TokenReview")) {
      redactTokenFields(body, bodyField, [["spec", "token"]], out);
    }
    if (ref.resource === "certificatesigningrequests" || ref.resource === "tokenrequests") {
      redactTokenFields(body, bodyField, [["status", "token"]], out);
    }
  }
  if (typeof item.requestURI === "string") {
    const { uri, redacted } = redactRequestURI(item.requestURI);
    if (redacted) {
      item.requestURI = uri;
      out.push("requestURI");
    }
  }
  if (out.length > 0) {
    const unique = [...new Set(out)];
    const annotations = isObject(item.annotations) ? item.annotations : {};
    annotations[REDACTED_ANNOTATION] = unique.join(",");
    item.annotations = annotations;
    return unique;
  }
  return out;
}
