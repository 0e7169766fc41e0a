import { parseAllDocuments, stringify as stringifyYaml } from "yaml";

/**
 * The one redactor (docs/redaction.md): every path by which an audit event leaves a process — the ingest (events and
 * dead letters), replay (Kafka, Elasticsearch, stdout, alert files) and the alert builder — runs it. Secret values are
 * replaced by REDACTED; keys, kinds, binary names and the shape of commands are kept, so rules and analysts still see
 * what changed. Every redacted place is listed in the event's REDACTED_ANNOTATION.
 *
 * Cost: bodies are walked iteratively (an explicit stack: a body nested 10,000 deep is walked, never overflows) and
 * most nodes cost one property read; strings are only pattern-matched after a cheap trigger test.
 */
export const REDACTED = "[REDACTED]";
export const REDACTED_ANNOTATION = "k8s-audit.io/redacted";

const LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration";
/** Admission webhooks' JSON patches, recorded by the apiserver as annotations at Request level and above. */
const WEBHOOK_PATCH_PREFIX = "patch.webhook.admission.k8s.io/";
/** The annotation lists at most this many paths (and each path at most PATH_CHARS): it must stay small. */
const MAX_LISTED_PATHS = 50;
const PATH_CHARS = 200;
/** Strings inside strings (an annotation holding a manifest holding an annotation…) are parsed this deep at most. */
const MAX_STRING_NESTING = 4;

type Json = Record<string, unknown>;
const isObject = (v: unknown): v is Json => v !== null && typeof v === "object" && !Array.isArray(v);

// ---------------------------------------------------------------------------------------------------------------
// Names that mark a credential
// ---------------------------------------------------------------------------------------------------------------

/**
 * Object keys whose string value is a credential (TokenRequest status.token, TokenReview spec.token, a CR's
 * adminPassword, clientSecret…). Only string values are redacted: `secret: {secretName}` volumes, booleans such as
 * automountServiceAccountToken and `*Ref` objects stay. Names of things (secretName, tokenPath) do not end in these.
 */
const CREDENTIAL_KEY =
  /(?:passw(?:or)?d|passphrase|secret|token|api[-_.]?key|access[-_.]?key|secret[-_.]?key|private[-_.]?key|key[-_.]?data|credentials?|bearer)$|^(?:pwd|pass|auth|sig|signature)$/i;
/**
 * Keys whose values the API defines as names, times, addresses, images or enums, never free text: their strings are
 * not pattern-matched (most strings of an object sit under these, and the pattern test is what a walk costs).
 */
const PLAIN_KEYS = new Set([
  "name",
  "namespace",
  "generateName",
  "uid",
  "resourceVersion",
  "creationTimestamp",
  "deletionTimestamp",
  "lastTransitionTime",
  "lastProbeTime",
  "lastUpdateTime",
  "startedAt",
  "finishedAt",
  "startTime",
  "apiVersion",
  "kind",
  "image",
  "imageID",
  "imagePullPolicy",
  "containerID",
  "mountPath",
  "subPath",
  "podIP",
  "hostIP",
  "ip",
  "nodeName",
  "serviceAccountName",
  "serviceAccount",
  "schedulerName",
  "priorityClassName",
  "restartPolicy",
  "dnsPolicy",
  "protocol",
  "phase",
  "status",
  "type",
  "reason",
  "qosClass",
  "operator",
  "effect",
  "fieldsType",
  "operation",
  "manager",
  "time",
  "cpu",
  "memory",
  "terminationMessagePath",
  "terminationMessagePolicy",
  "secretName",
  "claimName",
]);
const SCAN = 0;
const CREDENTIAL = 1;
const PLAIN = 2;
/** What a key says about its string value, remembered: the same few hundred keys recur in every body. */
const keyClasses = new Map<string, number>();
function keyClass(key: string): number {
  let known = keyClasses.get(key);
  if (known === undefined) {
    known = CREDENTIAL_KEY.test(key) ? CREDENTIAL : PLAIN_KEYS.has(key) ? PLAIN : SCAN;
    // Keys are client data: the memo stays bounded whatever a client sends.
    if (keyClasses.size < 10_000) keyClasses.set(key, known);
  }
  return known;
}
/** Environment variable (and {name, value} parameter) names that hold credentials. */
const CREDENTIAL_ENV =
  /passw|passphrase|pwd|(?:^|[-_.])pass(?:$|[-_.])|token|secret|api[-_.]?key|access[-_.]?key|private[-_.]?key|credential|(?:^|[-_.])auth(?:$|[-_.])|(?:^|[-_.])dsn$|conn(?:ection)?[-_.]?str/i;
/** …unless the name says the value is where or what the credential is, not the credential. */
const ENV_NOT_A_VALUE =
  /[-_.](?:file|path|dir|name|ref|uri|url|endpoint|host|port|user|username|id|ttl|expiry|expiration|type|mode|enabled|length|version|audience)$/i;
/** Query parameters that carry credentials, compared lowercase with `-` as `_` (X-Amz-Signature → x_amz_signature). */
const CREDENTIAL_PARAMS = new Set([
  "access_token",
  "token",
  "id_token",
  "refresh_token",
  "password",
  "passwd",
  "pass",
  "pwd",
  "secret",
  "client_secret",
  "api_key",
  "apikey",
  "key",
  "sig",
  "signature",
  "code",
  "auth",
  "authorization",
  "private_key",
  "session_token",
  "x_amz_signature",
  "x_amz_credential",
  "x_amz_security_token",
  "x_goog_signature",
  "x_goog_credential",
]);
const CREDENTIAL_PARAM_SUFFIX = /(?:token|password|passwd|secret|signature|api_?key|credential)$/;
/** Secret types: an object with one of these and data/stringData is a Secret even without a kind (a CR's template). */
const SECRET_TYPE = /^(?:Opaque$|kubernetes\.io\/|bootstrap\.kubernetes\.io\/|helm\.sh\/release)/;

// ---------------------------------------------------------------------------------------------------------------
// Free text: commands, messages, ConfigMap values, annotations
// ---------------------------------------------------------------------------------------------------------------

/**
 * One test per string before any real work: most strings of an API object contain none of these. (The bootstrap token
 * shape is only looked for past it: testing it on every string cost more than the rest together.)
 */
const TRIGGER =
  /pass|pwd|secret|token|key|auth|sig|credential|:\/\/|eyJ|AKIA|ASIA|gh[pousr]_|xox[abprs]-|glpat-|AIza|-----BEGIN|mysql|mariadb/i;
/** Strings shorter than this hold no `name=value` worth the test (`pass=abc` is 8). */
const MIN_TEXT = 8;
/** PEM private keys (RSA, EC, OPENSSH, ENCRYPTED, PGP blocks); a block cut short is redacted to the end. Certificates stay. */
const PEM_PRIVATE = /-----BEGIN ([A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?)-----[\s\S]*?(?:-----END \1-----|$)/g;
/**
 * `name=value`, `name: value`, `"name": "value"` where the name ends in a credential word (DB_PASSWORD=…, --token=…,
 * password: … in a config file, ?sig=… in a URL inside a command). Values starting with `$` are references
 * (`TOKEN=$(curl …)`, `$PASSWORD`), kept: rules read what the command substitutes.
 */
const ASSIGNMENT =
  /([A-Za-z0-9]?)(passw(?:or)?d|passphrase|pwd|pass|secret|token|api[-_]?key|access[-_]?key|private[-_]?key|key[-_]data|credentials?|auth|sig(?:nature)?)(["']?)([ \t]{0,3}=[ \t]{0,3}|:[ \t]{1,3}|:(?=["']))(["']?)([^\s"'&;|,}<>)]+)/gi;
/** Words that only count as a credential name on their own (pass, pwd, auth, sig): not bypass=, oauth=, config=. */
const WHOLE_WORD_ONLY = /^(?:pass|pwd|auth|sig)$/i;
/** `--password hunter2`, `--client-secret x`: a credential flag followed by its value as the next word. */
const FLAG_VALUE =
  /((?:^|\s)--?[A-Za-z0-9-]{0,40}(?:password|passwd|passphrase|token|secret|api-?key|access-?key|secret-?key|private-?key|credentials?))([ \t]+)([^\s$-][^\s]*)/gi;
/** `user:password@` in URLs (https, postgres, mongodb, redis, amqp, git…). */
const URL_USERINFO = /([a-z][a-z0-9+.-]{0,30}:\/\/)([^\s/:@]{0,200}):([^\s/@]{1,500})@/gi;
/** HTTP credentials: `Authorization: Bearer x`, `-H "X-Api-Key: x"`, `PRIVATE-TOKEN: x`, a Vault token header. */
const AUTH_HEADER =
  /(authorization|proxy-authorization)([ \t]{0,3}[:=][ \t]{0,3})((?:bearer|basic|token|digest|negotiate)[ \t]+)?([^\s"',;]+)/gi;
/** Credentials in well-known formats, wherever they appear. */
const KNOWN_TOKENS =
  /\beyJ[A-Za-z0-9_-]{4,}\.eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*|\b(?:AKIA|ASIA)[A-Z0-9]{16}\b|\bgh[pousr]_[A-Za-z0-9]{20,}|\bgithub_pat_[A-Za-z0-9_]{20,}|\bxox[abprs]-[A-Za-z0-9-]{10,}|\bglpat-[A-Za-z0-9_-]{16,}|\bAIza[0-9A-Za-z_-]{35}|\b[a-z0-9]{6}\.[a-z0-9]{16}\b/g;
/** mysql, mariadb and their tools take the password glued to -p (`-pS3cret`). */
const MYSQL_CLIENT = /\b(?:mysql|mysqldump|mysqladmin|mysqlsh|mariadb|mariadb-dump)\b/;
const MYSQL_PASSWORD = /((?:^|\s)-p)([^\s'"]+)/g;
/** Flags whose next argument is a secret, for exec argv given as separate words. */
const SECRET_FLAG =
  /^--?[A-Za-z0-9-]{0,40}(?:password|passwd|passphrase|token|secret|api-?key|access-?key|secret-?key|private-?key|credentials?)$/i;
/** `Invalid value: "…"` in an apiserver error about a Secret echoes the value. */
const INVALID_VALUE = /(Invalid value: )("(?:[^"\\]|\\.){0,10000}"|\S+)/g;

/**
 * Credentials in free text removed by pattern; undefined when nothing changed. Keeps everything that is not the
 * credential itself: the binary names, flags, variable names and PEM armour lines ("PRIVATE KEY-----" is what the
 * ConfigMap credentials rule looks for).
 */
export function redactText(text: string, options: { mysql?: boolean } = {}): string | undefined {
  if (text.length < MIN_TEXT || !(options.mysql === true || TRIGGER.test(text))) return undefined;
  const mysql = options.mysql === true || MYSQL_CLIENT.test(text);
  let s = text;
  if (s.includes("-----BEGIN"))
    s = s.replace(PEM_PRIVATE, (_m, label: string) => `-----BEGIN ${label}-----${REDACTED}-----END ${label}-----`);
  if (s.includes("://")) s = s.replace(URL_USERINFO, (_m, scheme: string, user: string) => `${scheme}${user}:${REDACTED}@`);
  s = s.replace(AUTH_HEADER, (_m, name: string, sep: string, scheme: string | undefined) => `${name}${sep}${scheme ?? ""}${REDACTED}`);
  s = s.replace(ASSIGNMENT, (m, before: string, word: string, q1: string, sep: string, q2: string, value: string) => {
    if (before && WHOLE_WORD_ONLY.test(word)) return m;
    if (value.startsWith("$") || value === REDACTED || value.startsWith("[REDACTED")) return m;
    return `${before}${word}${q1}${sep}${q2}${REDACTED}`;
  });
  s = s.replace(FLAG_VALUE, (m, flag: string, space: string, value: string) =>
    value.startsWith(REDACTED) ? m : `${flag}${space}${REDACTED}`,
  );
  s = s.replace(KNOWN_TOKENS, REDACTED);
  if (mysql) s = s.replace(MYSQL_PASSWORD, (m, flag: string, value: string) => (value.startsWith(REDACTED) ? m : `${flag}${REDACTED}`));
  return s === text ? undefined : s;
}

/**
 * An exec/attach command, word by word: each word by pattern, plus a word that follows a credential flag
 * (`--password`, `sshpass -p`) and the password of `curl -u user:password`. Returns the new argv, or undefined.
 */
export function redactArgv(argv: readonly string[]): string[] | undefined {
  const mysql = argv.some((a) => MYSQL_CLIENT.test(a));
  const sshpass = argv.some((a) => /\bsshpass$/.test(a));
  let changed = false;
  const out = argv.map((word, i) => {
    const previous = i > 0 ? (argv[i - 1] as string) : "";
    if (word.length > 0 && !word.startsWith("$") && word !== REDACTED) {
      if (SECRET_FLAG.test(previous) || (sshpass && previous === "-p")) {
        changed = true;
        return REDACTED;
      }
      if ((previous === "-u" || previous === "--user") && word.includes(":")) {
        changed = true;
        return `${word.slice(0, word.indexOf(":"))}:${REDACTED}`;
      }
    }
    const scrubbed = redactText(word, { mysql });
    if (scrubbed === undefined) return word;
    changed = true;
    return scrubbed;
  });
  return changed ? out : undefined;
}

// ---------------------------------------------------------------------------------------------------------------
// Request URIs
// ---------------------------------------------------------------------------------------------------------------

function decodeSafe(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

/**
 * Credentials in a request URI: the values of credential-named query parameters (names compared case-insensitively,
 * `-` read as `_`), `user:password@` anywhere, and the secret parts of exec/attach `command=` words (kept otherwise:
 * detection reads the command). Only changed parameters are rewritten; the rest of the URI stays byte for byte.
 */
export function redactRequestURI(uri: string): { uri: string; redacted: boolean } {
  let result = uri;
  if (uri.includes("@")) {
    const scrubbed = redactText(uri);
    if (scrubbed !== undefined) result = scrubbed;
  }
  const q = result.indexOf("?");
  if (q < 0) return { uri: result, redacted: result !== uri };
  const pairs = result.slice(q + 1).split("&");
  let changed = false;
  const commandAt: number[] = [];
  for (let i = 0; i < pairs.length; i++) {
    const pair = pairs[i] as string;
    const eq = pair.indexOf("=");
    if (eq < 0) continue;
    const name = queryParamName(pair.slice(0, eq));
    if (name === "command") {
      commandAt.push(i);
      continue;
    }
    const next = redactQueryPair(pair, eq, name);
    if (next !== undefined) {
      pairs[i] = next;
      changed = true;
    }
  }
  if (commandAt.length > 0 && redactCommandPairs(pairs, commandAt)) changed = true;
  if (changed) result = `${result.slice(0, q)}?${pairs.join("&")}`;
  return { uri: result, redacted: result !== uri };
}

/** A query parameter's name as compared: decoded, lowercase, `-` read as `_`. */
function queryParamName(raw: string): string {
  const lower = (raw.includes("%") ? decodeSafe(raw) : raw).toLowerCase();
  return lower.includes("-") ? lower.replaceAll("-", "_") : lower;
}

/** A `name=value` pair (`=` at `eq`) with its value redacted; undefined when the value stays. */
function redactQueryPair(pair: string, eq: number, name: string): string | undefined {
  const value = pair.slice(eq + 1);
  if (CREDENTIAL_PARAMS.has(name) || CREDENTIAL_PARAM_SUFFIX.test(name))
    return value.length > 0 && value !== "%5BREDACTED%5D" ? `${pair.slice(0, eq)}=%5BREDACTED%5D` : undefined;
  // Any other value: only well-known credential shapes (a JWT, a cloud key) and user:password URLs.
  if (value.length < 16) return undefined;
  const scrubbed = redactText(decodeSafe(value.replaceAll("+", " ")));
  return scrubbed === undefined ? undefined : `${pair.slice(0, eq)}=${encodeURIComponent(scrubbed)}`;
}

/** The exec/attach `command=` pairs (at `commandAt`) redacted in place as one argv; true when any changed. */
function redactCommandPairs(pairs: string[], commandAt: number[]): boolean {
  // Decoded as URLSearchParams decodes them (`+` is a space), as the detector reads the command.
  const argv = commandAt.map((i) => {
    const pair = pairs[i] as string;
    return decodeSafe(pair.slice(pair.indexOf("=") + 1).replaceAll("+", " "));
  });
  const scrubbed = redactArgv(argv);
  if (!scrubbed) return false;
  commandAt.forEach((i, n) => {
    if (scrubbed[n] !== argv[n]) {
      const pair = pairs[i] as string;
      pairs[i] = `${pair.slice(0, pair.indexOf("="))}=${encodeURIComponent(scrubbed[n] as string)}`;
    }
  });
  return true;
}

// ---------------------------------------------------------------------------------------------------------------
// Bodies
// ---------------------------------------------------------------------------------------------------------------

/** Where a node sits, as a chain to its parent: the path string is built only for what is redacted. */
interface Place {
  parent: Place | undefined;
  key: string | number;
}

interface Walk {
  out: string[];
  /** Nesting of bodies parsed out of strings. */
  nesting: number;
}

function pathOf(root: string, place: Place | undefined, key?: string | number): string {
  const parts: (string | number)[] = key === undefined ? [] : [key];
  // The body itself is the root frame (key -1): not a path segment.
  for (let p = place; p && p.key !== -1; p = p.parent) parts.push(p.key);
  let path = root;
  for (let i = parts.length - 1; i >= 0; i--) {
    const part = parts[i] as string | number;
    path += typeof part === "number" ? `[${part}]` : `.${part}`;
    if (path.length > PATH_CHARS) return `${path.slice(0, PATH_CHARS)}…`;
  }
  return path;
}

/** Secret data: every value replaced, the keys kept. */
function redactMap(holder: Json, key: string): boolean {
  const map = holder[key];
  if (map === undefined || map === null) return false;
  if (isObject(map)) {
    let changed = false;
    for (const k of Object.keys(map)) {
      if (map[k] !== REDACTED) {
        map[k] = REDACTED;
        changed = true;
      }
    }
    return changed;
  }
  // ExternalSecret's spec.data is a list of references, not values.
  if (Array.isArray(map)) return false;
  if (map === REDACTED) return false;
  holder[key] = REDACTED;
  return true;
}

/** What is known about a node from where it sits (bit flags). */
type Context = number;
const NONE: Context = 0;
/**
 * The body of a request about Secrets (or of an event that says nothing about its resource, e.g. a dead letter): every
 * object with data/stringData in it is Secret content, and a JSON patch of /data is too.
 */
const SECRET_BODY: Context = 1;
/** Under a Secret-carrying custom resource (ExternalSecret, SealedSecret…): templates' data is Secret content. */
const SECRET_CARRIER: Context = 2;

/** A node still to visit; it is also its children's Place (one allocation per object, not two). */
interface Frame extends Place {
  value: unknown;
  context: Context;
}

/** A JSON patch (RFC 6902): a list whose first element is an operation. */
function isJsonPatch(list: unknown[]): boolean {
  const first = list[0];
  return isObject(first) && typeof first.op === "string" && typeof first.path === "string";
}

function unescapePointer(segment: string): string {
  return segment.replaceAll("~1", "/").replaceAll("~0", "~");
}

/** Under a custom resource whose kind names Secret (ExternalSecret, SealedSecret…), templates' data is Secret content. */
function withSecretCarrier(kind: unknown, ctx: Context): Context {
  return typeof kind === "string" && kind !== "Secret" && kind.includes("Secret") ? ctx | SECRET_CARRIER : ctx;
}

/**
 * A Secret: by its kind; without a kind, inside a Secrets body; or holding data/stringData under a Secret carrier or
 * with a Secret's type. `context` is `ctx` as seen inside the object (withSecretCarrier).
 */
function isSecretObject(o: Json, ctx: Context, context: Context): boolean {
  const kind = o.kind;
  if (kind === "Secret" || (kind === undefined && (ctx & SECRET_BODY) !== 0)) return true;
  if (o.data === undefined && o.stringData === undefined) return false;
  return (context & SECRET_CARRIER) !== 0 || (typeof o.type === "string" && SECRET_TYPE.test(o.type));
}

/** {name, value}: an env var or a CR's parameter whose name says its value is a credential. */
function isCredentialParameter(o: Json): boolean {
  const name = o.name;
  return typeof name === "string" && typeof o.value === "string" && CREDENTIAL_ENV.test(name) && !ENV_NOT_A_VALUE.test(name);
}

class BodyWalker {
  constructor(
    private readonly walk: Walk,
    private readonly root: string,
  ) {}

  private record(place: Place | undefined, key?: string | number): void {
    this.walk.out.push(pathOf(this.root, place, key));
  }

  run(holder: Json | unknown[], key: string | number, context: Context): void {
    const top = (holder as Record<string | number, unknown>)[key];
    if (typeof top === "string") {
      const next = this.redactBodyString(top, context);
      if (next !== undefined) {
        (holder as Record<string | number, unknown>)[key] = next;
        this.record(undefined);
      }
      return;
    }
    const stack: Frame[] = [{ value: top, parent: undefined, key: -1, context }];
    while (stack.length > 0) {
      const place = stack.pop() as Frame;
      const { value, context: ctx } = place;
      if (Array.isArray(value)) this.array(value, place, ctx, stack);
      else if (isObject(value)) this.object(value, place, ctx, stack);
    }
  }

  private array(list: unknown[], place: Place, ctx: Context, stack: Frame[]): void {
    if (list.length > 0 && isJsonPatch(list)) {
      this.jsonPatch(list, place, ctx, stack);
      return;
    }
    for (let i = list.length - 1; i >= 0; i--) {
      const item = list[i];
      if (item !== null && typeof item === "object") stack.push({ value: item, parent: place, key: i, context: ctx });
      else if (typeof item === "string") this.listString(list, i, item, place, ctx);
    }
  }

  /** A string in a list: the word after a secret flag (a container's args: ["--api-token", "<value>"]), else any string. */
  private listString(list: unknown[], i: number, item: string, place: Place, ctx: Context): void {
    const previous = i > 0 ? list[i - 1] : undefined;
    if (typeof previous === "string" && SECRET_FLAG.test(previous) && item !== REDACTED && !item.startsWith("$")) {
      list[i] = REDACTED;
      this.record(place, i);
    } else this.stringAt(list, i, undefined, place, ctx);
  }

  private object(o: Json, place: Place | undefined, ctx: Context, stack: Frame[]): void {
    const kind = o.kind;
    const context = withSecretCarrier(kind, ctx);
    const secret = isSecretObject(o, ctx, context);
    if (secret) this.secretData(o, place);
    if (kind === "Table" && Array.isArray(o.columnDefinitions) && Array.isArray(o.rows)) this.tableCells(o, place);
    const envSecret = isCredentialParameter(o);
    // for…in allocates no key array; a parsed JSON object has no inherited enumerable keys.
    for (const key in o) {
      if (secret && (key === "data" || key === "stringData")) continue;
      // managedFields hold field names only (kept keys), never values: not walked, which halves the walk of most objects.
      if (key === "managedFields") continue;
      const v = o[key];
      if (typeof v === "string") {
        if (envSecret && key === "value") this.credentialValue(o, key, v, place);
        else this.stringAt(o, key, key, place, context);
      } else if (v !== null && typeof v === "object") stack.push({ value: v, parent: place, key, context });
    }
  }

  /** A Secret's data and stringData: every value replaced, the keys kept. */
  private secretData(o: Json, place: Place | undefined): void {
    if (redactMap(o, "data")) this.record(place, "data");
    if (redactMap(o, "stringData")) this.record(place, "stringData");
  }

  private credentialValue(o: Json, key: string, value: string, place: Place | undefined): void {
    if (value === REDACTED || value.length === 0) return;
    o[key] = REDACTED;
    this.record(place, key);
  }

  /** A Table's cells under a column named like a credential (a CR's printer column on .spec.password). */
  private tableCells(table: Json, place: Place | undefined): void {
    const columns = (table.columnDefinitions as unknown[]).flatMap((c, i) =>
      isObject(c) && typeof c.name === "string" && CREDENTIAL_KEY.test(c.name.replaceAll(" ", "")) ? [i] : [],
    );
    if (columns.length === 0) return;
    (table.rows as unknown[]).forEach((row, r) => {
      if (!isObject(row) || !Array.isArray(row.cells)) return;
      for (const c of columns)
        if (row.cells[c] !== undefined && row.cells[c] !== null && row.cells[c] !== REDACTED) {
          row.cells[c] = REDACTED;
          this.record({ parent: { parent: place, key: "rows" }, key: r }, `cells[${c}]`);
        }
    });
  }

  /** JSON patch operations judged by their content and by where they write. */
  private jsonPatch(ops: unknown[], place: Place | undefined, ctx: Context, stack: Frame[]): void {
    for (let i = ops.length - 1; i >= 0; i--) {
      const op = ops[i];
      if (!isObject(op)) continue;
      if ("value" in op && typeof op.path === "string") this.patchOperation(op, op.path, { parent: place, key: i }, ctx, stack);
      else stack.push({ value: op, parent: place, key: i, context: ctx });
    }
  }

  /** One operation with a value, judged by its content and by where (`path`) it writes. */
  private patchOperation(op: Json, path: string, opPlace: Place, ctx: Context, stack: Frame[]): void {
    const segments = path.split("/").slice(1).map(unescapePointer);
    const first = segments[0];
    const last = segments[segments.length - 1];
    const value = op.value;
    const secretData = (ctx & (SECRET_BODY | SECRET_CARRIER)) !== 0 && segments.some((s) => s === "data" || s === "stringData");
    if (secretData || (last === "value" && segments.includes("env"))) {
      // /data/key, /stringData, /spec/template/data…: Secret content; /…/env/0/value: we cannot see the name.
      this.patchSecretValue(op, segments, opPlace);
    } else if (typeof value === "string") {
      // The value is what the last segment names: /metadata/annotations/kubectl.kubernetes.io~1last-applied-configuration.
      this.stringAt(op, "value", last, opPlace, ctx);
    } else if (Array.isArray(value) && last === "env") {
      stack.push({ value, parent: opPlace, key: "value", context: ctx });
    } else if (value !== null && typeof value === "object") {
      // `/`, `/metadata`, `/metadata/annotations`, `/spec/template`: the value is walked as what it is.
      const asSecret = first === undefined || first === "" ? ctx : ctx & ~SECRET_BODY;
      stack.push({ value, parent: opPlace, key: "value", context: asSecret });
    }
  }

  /** An operation writing Secret data or an env value: a data map keeps its keys, anything else goes whole. */
  private patchSecretValue(op: Json, segments: string[], opPlace: Place): void {
    const value = op.value;
    if (isObject(value) && !segments.includes("env")) {
      if (redactMap(op, "value")) this.record(opPlace, "value");
    } else if (value !== REDACTED && value !== null && value !== undefined) {
      op.value = REDACTED;
      this.record(opPlace, "value");
    }
  }

  /** A string in an object or a list; `key` is the name it has in its object (or patch path), if any. */
  private stringAt(holder: Json | unknown[], at: string | number, key: string | undefined, place: Place | undefined, ctx: Context): void {
    const s = (holder as Record<string | number, unknown>)[at] as string;
    if (s.length === 0 || s === REDACTED) return;
    let next: string | undefined;
    if (key !== undefined && key === LAST_APPLIED) next = this.redactEmbedded(s, ctx, true);
    else {
      const cls = key === undefined ? SCAN : keyClass(key);
      if (cls === CREDENTIAL) next = REDACTED;
      else if (cls === SCAN || s.includes("-----BEGIN")) next = this.redactFreeString(s, ctx);
      // A Status about a Secret (the response body of a refused write) echoes the value it refused.
      if (key === "message" && (ctx & SECRET_BODY) !== 0)
        next = (next ?? s).replace(INVALID_VALUE, (_m, label: string) => `${label}"${REDACTED}"`);
    }
    if (next !== undefined && next !== s) {
      (holder as Record<string | number, unknown>)[at] = next;
      this.record(place, at);
    }
  }

  /** A top-level body that is a string (a YAML apply patch, a manifest logged as text). */
  private redactBodyString(s: string, ctx: Context): string | undefined {
    if ((ctx & SECRET_BODY) !== 0) return this.redactEmbedded(s, ctx, true) ?? (looksLikeManifest(s) ? undefined : REDACTED);
    return this.redactFreeString(s, ctx);
  }

  private redactFreeString(s: string, ctx: Context): string | undefined {
    if (s.length < MIN_TEXT) return undefined;
    // A manifest inside a string (a ConfigMap holding a Secret's YAML, a Helm values blob): parsed and walked.
    if (s.includes("Secret") && looksLikeManifest(s)) return this.redactEmbedded(s, ctx, false);
    return redactText(s);
  }

  /**
   * A JSON or YAML document in a string, walked like a body and written back in its own syntax. If it cannot be
   * parsed (or written back) and it holds a Secret (or must be one), the whole string goes.
   */
  private redactEmbedded(s: string, ctx: Context, mustRedactIfUnreadable: boolean): string | undefined {
    const holdsSecret = mustRedactIfUnreadable || /\bSecret\b/.test(s);
    if (this.walk.nesting >= MAX_STRING_NESTING) return holdsSecret ? REDACTED : redactText(s);
    const trimmed = s.trimStart();
    const inner: Walk = { out: [], nesting: this.walk.nesting + 1 };
    try {
      if (trimmed.startsWith("{") || trimmed.startsWith("[")) {
        const doc = { body: JSON.parse(s) as unknown };
        new BodyWalker(inner, "").run(doc, "body", ctx);
        if (inner.out.length === 0) return redactText(s);
        return JSON.stringify(doc.body);
      }
      const docs = parseAllDocuments(s);
      if (!Array.isArray(docs) || docs.length === 0 || docs.some((d) => d.errors.length > 0)) throw new Error("not YAML");
      const values = docs.map((d) => ({ body: d.toJS({ maxAliasCount: 100 }) as unknown }));
      if (!values.some((v) => v.body !== null && typeof v.body === "object")) throw new Error("not a manifest");
      for (const v of values) new BodyWalker(inner, "").run(v, "body", ctx);
      if (inner.out.length === 0) return redactText(s);
      return values.map((v) => stringifyYaml(v.body)).join("---\n");
    } catch {
      return holdsSecret ? REDACTED : redactText(s);
    }
  }
}

/** A JSON document in a string (a webhook's patch annotation), walked; undefined when unchanged. */
function redactJsonString(text: string, walk: Walk, root: string): string | undefined {
  const before = walk.out.length;
  try {
    const holder = { body: JSON.parse(text) as unknown };
    new BodyWalker(walk, root).run(holder, "body", NONE);
    return walk.out.length > before ? JSON.stringify(holder.body) : undefined;
  } catch {
    const scrubbed = redactText(text);
    if (scrubbed !== undefined) walk.out.push(root);
    return scrubbed;
  }
}

/** JSON, or YAML with a `kind:` or `apiVersion:` line: worth parsing. */
function looksLikeManifest(s: string): boolean {
  const t = s.trimStart();
  return t.startsWith("{") || t.startsWith("[") || /(?:^|\n)\s*(?:kind|apiVersion)\s*:/.test(s);
}

/** The event says its bodies are Secrets (or says nothing about its resource: then it is treated as if they were). */
function secretsContext(item: Json): Context {
  const ref = item.objectRef;
  const uri = typeof item.requestURI === "string" ? item.requestURI : "";
  if (isObject(ref) && typeof ref.resource === "string") {
    const coreGroup = ref.apiGroup === undefined || ref.apiGroup === "" || ref.apiGroup === null;
    if (ref.resource === "secrets" && coreGroup) return SECRET_BODY;
    // externalsecrets, sealedsecrets, pushsecrets…: their templates' data is Secret content.
    return ref.resource.includes("secret") ? SECRET_CARRIER : NONE;
  }
  // A dead letter without a usable objectRef: the URI may tell; else be conservative.
  if (uri.length > 0) return /^\/api\/v1\/(?:namespaces\/[^/]+\/)?secrets(?:[/?]|$)/.test(uri) ? SECRET_BODY : NONE;
  return SECRET_BODY;
}

/**
 * Redacts an audit event (or any JSON value bound for a dead letter) in place — the object was just parsed and is
 * ours — and returns the redacted paths; marks the event with REDACTED_ANNOTATION when there are any. Never throws on
 * any parsed JSON value, however deep.
 */
export function redactEvent(item: unknown): string[] {
  if (Array.isArray(item)) {
    // Not an event (a dead letter): its elements are walked as bodies of unknown resource.
    const walk: Walk = { out: [], nesting: 0 };
    for (let i = 0; i < item.length; i++) new BodyWalker(walk, `[${i}]`).run(item, i, SECRET_BODY);
    return [...new Set(walk.out)];
  }
  if (!isObject(item)) return [];
  const walk: Walk = { out: [], nesting: 0 };
  const ctx = secretsContext(item);
  for (const field of ["requestObject", "responseObject"] as const) {
    const body = item[field];
    if (body === undefined || body === null) continue;
    new BodyWalker(walk, field).run(item, field, ctx);
  }
  redactEventURI(item, walk);
  redactStatusMessage(item, ctx, walk);
  redactWebhookPatches(item, walk);
  if (walk.out.length === 0) return [];
  const unique = [...new Set(walk.out)];
  markRedacted(item, unique);
  return unique;
}

function redactEventURI(item: Json, walk: Walk): void {
  if (typeof item.requestURI !== "string") return;
  const { uri, redacted } = redactRequestURI(item.requestURI);
  if (!redacted) return;
  item.requestURI = uri;
  walk.out.push("requestURI");
}

/** responseStatus.message: free text, and about a Secret it may echo the refused value. */
function redactStatusMessage(item: Json, ctx: Context, walk: Walk): void {
  const status = item.responseStatus;
  if (!isObject(status) || typeof status.message !== "string") return;
  let message = redactText(status.message) ?? status.message;
  if (ctx === SECRET_BODY) message = message.replace(INVALID_VALUE, (_m, label: string) => `${label}"${REDACTED}"`);
  if (message === status.message) return;
  status.message = message;
  walk.out.push("responseStatus.message");
}

/** Admission webhooks' JSON patches recorded as annotations. */
function redactWebhookPatches(item: Json, walk: Walk): void {
  const annotations = item.annotations;
  if (!isObject(annotations)) return;
  for (const key of Object.keys(annotations)) {
    const value = annotations[key];
    if (typeof value !== "string" || !key.startsWith(WEBHOOK_PATCH_PREFIX)) continue;
    const next = redactJsonString(value, walk, `annotations.${key}`);
    if (next !== undefined) annotations[key] = next;
  }
}

/** REDACTED_ANNOTATION on the event: the redacted paths, at most MAX_LISTED_PATHS of them. */
function markRedacted(item: Json, paths: string[]): void {
  const listed =
    paths.length > MAX_LISTED_PATHS ? [...paths.slice(0, MAX_LISTED_PATHS), `+${paths.length - MAX_LISTED_PATHS} more`] : paths;
  const marked = isObject(item.annotations) ? item.annotations : {};
  marked[REDACTED_ANNOTATION] = listed.join(",");
  item.annotations = marked;
}

/**
 * Any webhook item, redacted: objects and lists in place (as redactEvent), and a bare string — which cannot be changed
 * in place — returned redacted like the string body of a request of unknown resource (a manifest walked, anything else
 * replaced whole). For the dead-letter path, which stores whatever a client sent.
 */
export function redactValue(item: unknown): { value: unknown; paths: string[] } {
  if (typeof item !== "string") return { value: item, paths: redactEvent(item) };
  const walk: Walk = { out: [], nesting: 0 };
  const holder: Json = { item };
  new BodyWalker(walk, "item").run(holder, "item", SECRET_BODY);
  return { value: holder.item, paths: [...new Set(walk.out)] };
}
