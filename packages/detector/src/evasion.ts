import { type AuditEvent, AuditEventSchema, describeIssues, SEVERITY_SCORES } from "@k8s-audit/core";
import type { CompiledRule } from "@k8s-audit/rules";
import { Detector } from "./engine.js";
import { TEST_EVENT_DEFAULTS } from "./rule-tests.js";

/**
 * The evasion suite: for every medium or higher per-event rule, each of its firing cases rewritten the ways an
 * attacker who knows the rule would try to step around it (update and every kind of patch instead of create, every
 * workload template instead of a pod, init and ephemeral containers, an allow-listed container beside the bad one,
 * impersonation, kube-system and node identities, a refused attempt, a reused auditID, an archive without a cluster,
 * a far-future event in the stream, a body padded past the ingest's size limit). Each variant must still raise the
 * rule's alert (or, refused, its attempt alert). A variant that does not apply to a rule (a create-only rule has no
 * patch variant; a rule about who acts has no identity variants) is not generated.
 */
export interface EvasionCase {
  /** The rule under test. */
  rule: string;
  variant: string;
  /** The events, in order; the last one is the request that must raise `expect`. */
  events: AuditEvent[];
  /** The rule id whose alert must name the last event's request (an attempt: `<rule>.attempt`). */
  expect: string;
  /** Identity variants that the library declares routine for that identity (system_routine) are skipped, and said. */
  routine?: boolean;
}

export interface EvasionResult {
  rule: string;
  source: string;
  passed: number;
  /** Variants skipped as routine for the identity (system_routine), by name. */
  routine: string[];
  failures: string[];
}

const MIN_SCORE = SEVERITY_SCORES.medium;
/** One ingest refuses to store events above 900 KiB (K8S_AUDIT_MAX_EVENT_BYTES): a padded body must still be judged. */
const PADDING_BYTES = 1024 * 1024;
/** Evasion events are stamped from here on, each case two minutes after the previous one (its own storm window). */
const SUITE_START = Date.parse("2026-02-01T00:00:00Z");
const CASE_SPACING_MS = 120_000;

type Body = Record<string, unknown>;

/** One way of rewriting a firing case: its events (the last is the request that must raise `expect`). */
interface Variant {
  variant: string;
  events: AuditEvent[];
  expect?: string;
  /** A node or controller identity variant (skipped where the library declares the behaviour routine). */
  identity?: boolean;
  /** The index of an event that keeps its own time (a far-future stamp is the point of it). */
  keepsTime?: number;
  /** Every event carries the last one's auditID (a client reusing Audit-ID). */
  sharedAuditID?: boolean;
}

const clone = <T>(value: T): T => structuredClone(value);
const isObject = (v: unknown): v is Body => v !== null && typeof v === "object" && !Array.isArray(v);

/** Workload kinds and where each keeps its pod template. */
const TEMPLATES: { resource: string; apiGroup?: string; kind: string; wrap: (podSpec: Body, metadata: Body) => Body }[] = [
  { resource: "deployments", apiGroup: "apps", kind: "Deployment", wrap: (spec, m) => ({ replicas: 1, template: { metadata: m, spec } }) },
  { resource: "daemonsets", apiGroup: "apps", kind: "DaemonSet", wrap: (spec, m) => ({ template: { metadata: m, spec } }) },
  {
    resource: "statefulsets",
    apiGroup: "apps",
    kind: "StatefulSet",
    wrap: (spec, m) => ({ serviceName: "s", template: { metadata: m, spec } }),
  },
  { resource: "replicasets", apiGroup: "apps", kind: "ReplicaSet", wrap: (spec, m) => ({ template: { metadata: m, spec } }) },
  { resource: "replicationcontrollers", kind: "ReplicationController", wrap: (spec, m) => ({ template: { metadata: m, spec } }) },
  {
    resource: "jobs",
    apiGroup: "batch",
    kind: "Job",
    wrap: (spec, m) => ({ template: { metadata: m, spec: { restartPolicy: "Never", ...spec } } }),
  },
  {
    resource: "cronjobs",
    apiGroup: "batch",
    kind: "CronJob",
    wrap: (spec, m) => ({
      schedule: "*/5 * * * *",
      jobTemplate: { spec: { template: { metadata: m, spec: { restartPolicy: "Never", ...spec } } } },
    }),
  },
];

/** A JSON patch that writes every leaf of `body` (how `kubectl patch --type=json` spells a change). */
function jsonPatchOf(body: Body): Body[] {
  const ops: Body[] = [];
  const walk = (value: unknown, path: string) => {
    if (isObject(value) && Object.keys(value).length > 0) {
      for (const [k, v] of Object.entries(value)) walk(v, `${path}/${k.replaceAll("~", "~0").replaceAll("/", "~1")}`);
    } else if (Array.isArray(value) && value.length > 0) {
      for (const [i, v] of value.entries()) walk(v, `${path}/${i}`);
    } else ops.push({ op: path.split("/").length > 3 ? "add" : "replace", path, value });
  };
  const { kind: _kind, apiVersion: _apiVersion, ...rest } = body;
  walk(rest, "");
  return ops;
}

function podSpecOf(event: AuditEvent): Body | undefined {
  const body = event.requestObject;
  if (!isObject(body) || event.objectRef?.resource !== "pods") return undefined;
  const spec = body.spec;
  return isObject(spec) && Array.isArray(spec.containers) ? spec : undefined;
}

/** Whether the rule's condition tests any of these field paths (or paths under them). */
function reads(rule: CompiledRule, ...prefixes: string[]): boolean {
  for (const f of rule.fields) for (const p of prefixes) if (f === p || f.startsWith(`${p}.`) || f.startsWith(`${p}[`)) return true;
  return false;
}

const acceptsVerb = (rule: CompiledRule, verb: string) => !rule.verbs || rule.verbs.has(verb);
const acceptsResource = (rule: CompiledRule, resource: string) => !rule.resources || rule.resources.has(resource);

type AddVariant = (variant: string, change: (e: AuditEvent) => void, extra?: Partial<Variant>) => void;

function variantsOf(rule: CompiledRule, base: AuditEvent, quiet: AuditEvent | undefined): Variant[] {
  const out: Variant[] = [];
  const add: AddVariant = (variant, change, extra = {}) => {
    const e = clone(base);
    change(e);
    out.push({ variant, events: [e], ...extra });
  };
  const body = isObject(base.requestObject) ? base.requestObject : undefined;
  const readsBody = reads(rule, "object", "podSpecs", "containers", "requestObject", "responseObject");

  add("as written", () => {});
  addIdentityVariants(rule, add);
  add("no cluster (archive)", (e) => {
    delete e.cluster;
  });
  out.push(...streamVariants(base, quiet));
  if (rule.definition.stages.includes("ResponseStarted"))
    add("ResponseStarted only", (e) => {
      e.stage = "ResponseStarted";
      e.responseStatus = { metadata: {}, code: 101 };
    });
  // Rules about the answer itself (a decision, a status) have no refused twin: the refusal is what they judge.
  if (rule.definition.outcome === "success" && !reads(rule, "annotations", "responseStatus"))
    addRefusedVariants(rule.definition.id, base, readsBody, add);
  if (body && readsBody && (base.verb === "create" || base.verb === "update")) addWriteVariants(rule, base, body, add);
  const podSpec = podSpecOf(base);
  if (podSpec && readsBody) addPodTemplateVariants(rule, body, podSpec, add);
  if (body && readsBody)
    add("body padded past the size limit", (e) => {
      const b = e.requestObject as Body;
      const metadata = isObject(b.metadata) ? b.metadata : {};
      b.metadata = {
        ...metadata,
        annotations: { ...(isObject(metadata.annotations) ? metadata.annotations : {}), padding: "x".repeat(PADDING_BYTES) },
      };
      delete e.responseObject;
    });
  return out;
}

/** Someone else acting: an impersonator, a kube-system add-on, a node, a controller (unless the rule is about who acts). */
function addIdentityVariants(rule: CompiledRule, add: AddVariant): void {
  if (!reads(rule, "impersonatedUser", "authenticatedUser"))
    add("impersonated", (e) => {
      e.impersonatedUser = e.user;
      e.user = { username: "mallory@example.com", groups: ["system:authenticated"] };
    });
  if (reads(rule, "user", "impersonatedUser", "authenticatedUser")) return;
  add("kube-system add-on token", (e) => {
    e.user = {
      username: "system:serviceaccount:kube-system:metrics-agent",
      groups: ["system:serviceaccounts", "system:serviceaccounts:kube-system", "system:authenticated"],
    };
  });
  add(
    "node identity",
    (e) => {
      e.user = { username: "system:node:worker-1", groups: ["system:nodes", "system:authenticated"] };
    },
    { identity: true },
  );
  add(
    "controller identity",
    (e) => {
      e.user = {
        username: "system:serviceaccount:kube-system:generic-garbage-collector",
        groups: ["system:serviceaccounts", "system:authenticated"],
      };
    },
    { identity: true },
  );
}

/** The request after other events in the stream: a far-future one, and a harmless one with the same auditID. */
function streamVariants(base: AuditEvent, quiet: AuditEvent | undefined): Variant[] {
  // A far-future event first: it must not move time for the request that follows.
  const future = clone(base);
  future.verb = "get";
  future.objectRef = { resource: "configmaps", namespace: "default", name: "clock", apiVersion: "v1" };
  delete future.requestObject;
  delete future.responseObject;
  future.requestReceivedTimestamp = "2100-01-01T00:00:00.000000Z";
  future.stageTimestamp = "2100-01-01T00:00:00.001000Z";
  const variants: Variant[] = [{ variant: "far-future event before it", events: [future, clone(base)], keepsTime: 0 }];
  // The same auditID on a harmless request just before (the client sets Audit-ID): the real one must still count.
  if (quiet) {
    const twin = clone(quiet);
    twin.cluster = base.cluster;
    variants.push({ variant: "reused auditID", events: [twin, clone(base)], sharedAuditID: true });
  }
  return variants;
}

/** The request refused, by authorization (unless the rule reads the body) and, for a write, by admission. */
function addRefusedVariants(id: string, base: AuditEvent, readsBody: boolean, add: AddVariant): void {
  if (!readsBody)
    add(
      "refused by authorization",
      (e) => {
        delete e.requestObject;
        delete e.responseObject;
        e.responseStatus = { metadata: {}, status: "Failure", reason: "Forbidden", code: 403, message: `${e.verb} is forbidden` };
        e.annotations = { ...e.annotations, "authorization.k8s.io/decision": "forbid", "authorization.k8s.io/reason": "" };
      },
      { expect: `${id}.attempt` },
    );
  if (base.verb !== "get" && base.verb !== "list" && base.verb !== "watch")
    add(
      "refused by admission",
      (e) => {
        delete e.responseObject;
        e.responseStatus = {
          metadata: {},
          status: "Failure",
          reason: "Forbidden",
          code: 403,
          message: `${e.objectRef?.resource ?? "object"} "${e.objectRef?.name ?? "x"}" is forbidden: violates PodSecurity "baseline:latest"`,
        };
        e.annotations = {
          ...e.annotations,
          "authorization.k8s.io/decision": "allow",
          "pod-security.kubernetes.io/enforce-policy": "baseline:latest",
        };
      },
      { expect: `${id}.attempt` },
    );
}

/** The same body written another way: an update, and every kind of patch. */
function addWriteVariants(rule: CompiledRule, base: AuditEvent, body: Body, add: AddVariant): void {
  const changed = (verb: string) => (e: AuditEvent) => {
    e.verb = verb;
    delete e.responseObject;
    e.responseStatus = { metadata: {}, code: 200 };
  };
  if (acceptsVerb(rule, "update") && base.verb !== "update") add("update", changed("update"));
  if (!acceptsVerb(rule, "patch")) return;
  add("merge patch", (e) => {
    changed("patch")(e);
    const { kind: _k, apiVersion: _a, ...patch } = clone(body);
    e.requestObject = patch;
  });
  add("JSON patch", (e) => {
    changed("patch")(e);
    e.requestObject = jsonPatchOf(body);
  });
  add("patch with the result in the response", (e) => {
    changed("patch")(e);
    e.requestObject = [{ op: "add", path: "/metadata/labels/touched", value: "yes" }];
    e.responseObject = clone(body);
  });
  add("server-side apply", (e) => {
    changed("patch")(e);
    e.requestURI = `${e.requestURI.split("?")[0]}?fieldManager=kubectl&fieldValidation=Strict&force=true`;
  });
}

/** The pod's containers elsewhere: in every workload template, beside an allow-listed one, as init or ephemeral containers. */
function addPodTemplateVariants(rule: CompiledRule, body: Body | undefined, podSpec: Body, add: AddVariant): void {
  const metadata = isObject(body?.metadata) ? (body?.metadata as Body) : { name: "p" };
  for (const t of TEMPLATES) {
    if (!acceptsResource(rule, t.resource)) continue;
    add(`${t.kind} template`, (e) => {
      e.objectRef = { ...e.objectRef, resource: t.resource, apiGroup: t.apiGroup, apiVersion: "v1" };
      e.requestURI = `/apis/${t.apiGroup ? `${t.apiGroup}/` : ""}v1/namespaces/${e.objectRef.namespace ?? "default"}/${t.resource}`;
      e.requestObject = { kind: t.kind, metadata, spec: t.wrap(clone(podSpec), { labels: { app: "x" } }) };
      delete e.responseObject;
    });
  }
  add("beside an allow-listed container", (e) => {
    const spec = (e.requestObject as Body).spec as Body;
    spec.containers = [{ name: "kube-proxy", image: "registry.k8s.io/kube-proxy:v1.31.0" }, ...(spec.containers as Body[])];
  });
  add("as init containers", (e) => {
    const spec = (e.requestObject as Body).spec as Body;
    spec.initContainers = spec.containers;
    spec.containers = [{ name: "main", image: "registry.k8s.io/pause:3.10" }];
  });
  if (acceptsVerb(rule, "patch"))
    add("as an ephemeral container (kubectl debug)", (e) => {
      const spec = (e.requestObject as Body).spec as Body;
      e.verb = "patch";
      e.objectRef = { ...e.objectRef, subresource: "ephemeralcontainers" };
      e.requestURI = `${e.requestURI.split("?")[0]}/${e.objectRef.name ?? "p"}/ephemeralcontainers`;
      e.requestObject = { spec: { ...spec, ephemeralContainers: spec.containers, containers: undefined } };
      delete e.responseObject;
    });
}

/** Every evasion case of the given rules (medium and higher, per-event), stamped one after another in event time. */
export function evasionCases(rules: readonly CompiledRule[]): EvasionCase[] {
  const cases: EvasionCase[] = [];
  for (const rule of rules) {
    const def = rule.definition;
    if (SEVERITY_SCORES[def.severity] < MIN_SCORE || def.tests.fire.length === 0) continue;
    const quiet = def.tests.quiet[0] ? materialise(def.tests.quiet[0], `${def.id}-quiet`) : undefined;
    def.tests.fire.forEach((fire, f) => {
      const base = materialise(fire, `${def.id}-fire${f}`);
      if (!base) return;
      for (const v of variantsOf(rule, base, quiet)) {
        const at = SUITE_START + cases.length * CASE_SPACING_MS;
        const last = v.events.length - 1;
        const events = v.events.map((e, i) =>
          restamp(e, `ev-${cases.length}-${v.sharedAuditID ? last : i}`, i === v.keepsTime ? undefined : at + i * 1000),
        );
        const routine = v.identity && def.exclude_system_components ? rule.isSystemRoutine(events[last] as AuditEvent) : false;
        cases.push({
          rule: def.id,
          variant: `${v.variant} (fire[${f}])`,
          events,
          expect: v.expect ?? def.id,
          ...(routine ? { routine } : {}),
        });
      }
    });
  }
  return cases;
}

function materialise(fields: Record<string, unknown>, auditID: string): AuditEvent | undefined {
  const parsed = AuditEventSchema.safeParse({ ...clone(TEST_EVENT_DEFAULTS), auditID, ...clone(fields) });
  if (!parsed.success) throw new Error(`${auditID}: not a valid audit event: ${describeIssues(parsed.error)}`);
  return parsed.data;
}

/** A fresh auditID and, unless `at` is undefined (a far-future event keeps its own), a fresh event time. */
function restamp(event: AuditEvent, auditID: string, at: number | undefined): AuditEvent {
  const e = clone(event);
  e.auditID = auditID;
  if (at === undefined) return e;
  e.requestReceivedTimestamp = new Date(at).toISOString();
  e.stageTimestamp = new Date(at + 10).toISOString();
  return e;
}

/** Whether an alert of `ruleId` names this request (auditID and received time: auditIDs can be reused). */
export function alertNames(
  alert: { rule: { id: string }; kubernetes: { audit: { auditID: string[]; requestReceivedTimestamp?: string } } },
  ruleId: string,
  request: AuditEvent,
): boolean {
  return (
    alert.rule.id === ruleId &&
    alert.kubernetes.audit.auditID.includes(request.auditID) &&
    (alert.kubernetes.audit.requestReceivedTimestamp === undefined ||
      alert.kubernetes.audit.requestReceivedTimestamp === request.requestReceivedTimestamp)
  );
}

/** Runs every case through a fresh in-process detector holding only its rule, and reports per rule. */
export function runEvasionTests(rules: readonly CompiledRule[]): EvasionResult[] {
  const byRule = new Map<string, EvasionResult>();
  for (const rule of rules) {
    if (SEVERITY_SCORES[rule.definition.severity] >= MIN_SCORE && rule.definition.tests.fire.length)
      byRule.set(rule.definition.id, { rule: rule.definition.id, source: rule.source, passed: 0, routine: [], failures: [] });
  }
  const compiled = new Map(rules.map((r) => [r.definition.id, r]));
  for (const c of evasionCases(rules)) {
    const result = byRule.get(c.rule) as EvasionResult;
    if (c.routine) {
      result.routine.push(c.variant);
      continue;
    }
    const detector = new Detector([compiled.get(c.rule) as CompiledRule], { stormWindowMs: 0 });
    const alerts = c.events.flatMap((e) => detector.evaluate(e));
    const last = c.events[c.events.length - 1] as AuditEvent;
    if (alerts.some((a) => alertNames(a, c.expect, last))) result.passed++;
    else result.failures.push(`${c.variant}: expected ${c.expect}, got ${alerts.map((a) => a.rule.id).join(", ") || "no alert"}`);
  }
  return [...byRule.values()];
}
