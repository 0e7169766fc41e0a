import { createLogger, MemoryBus } from "@k8s-audit/core";
import { auditLogEvent } from "@k8s-audit/testkit";
import { describe, expect, it } from "vitest";
import {
  createIngestMetrics,
  Ingestor,
  ORIGINAL_BYTES_ANNOTATION,
  TRUNCATED_ANNOTATION,
  TRUNCATED_FIELDS_ANNOTATION,
} from "../src/index.js";

const topics = { events: "events", alerts: "alerts", deadLetter: "dlq" };
const logger = createLogger({ level: "silent" });
const LIMIT = 900 * 1024;
const MB = 1024 * 1024;

let seq = 0;
/**
 * The kit's event as these cases were written: a create by mallory, numbered, a microsecond later each; no objectRef
 * unless a case gives one (the truncator chooses what to keep by resource) and no annotations.
 */
function caseEvent(extra: Record<string, unknown> = {}): Record<string, unknown> {
  seq++;
  return auditLogEvent({
    auditID: `trunc-${seq}`,
    requestURI: "/",
    verb: "create",
    user: { username: "mallory", groups: ["system:authenticated"] },
    sourceIPs: ["192.0.2.7"],
    userAgent: "kubectl/v1.31.0",
    objectRef: undefined,
    responseStatus: { metadata: {}, code: 201 },
    requestReceivedTimestamp: `2026-01-01T00:00:00.${String(seq).padStart(6, "0")}Z`,
    stageTimestamp: `2026-01-01T00:00:01.${String(seq).padStart(6, "0")}Z`,
    annotations: undefined,
    ...extra,
  });
}

/** Runs items through an Ingestor on a memory bus; returns what reached the events and dead-letter topics. */
async function ingest(items: unknown[], maxEventBytes?: number) {
  const bus = new MemoryBus();
  const ingestor = new Ingestor({ bus, topics, logger, metrics: createIngestMetrics(), ...(maxEventBytes ? { maxEventBytes } : {}) });
  const outcome = await ingestor.ingest(items, "test");
  const raw = bus.read("events").map((m) => m.value);
  return { outcome, raw, events: raw.map((v) => JSON.parse(v)), dead: bus.read("dlq") };
}

async function ingestOne(item: Record<string, unknown>, maxEventBytes?: number) {
  const { outcome, raw, events } = await ingest([item], maxEventBytes);
  expect(outcome.status).toBe(200);
  expect(raw).toHaveLength(1);
  return { raw: raw[0] as string, event: events[0], outcome };
}

const pad = (n: number) => "x".repeat(n);
const managedFields = (n: number) =>
  Array.from({ length: n }, (_, i) => ({ manager: `m${i}`, fieldsV1: { "f:metadata": { pad: pad(500) } } }));
/** Many strings each under the 4 KiB shortening threshold: step 2 does not help, only the skeleton does. */
const manyAnnotations = (n: number, size = 3000) =>
  Object.fromEntries(Array.from({ length: n }, (_, i) => [`pad.example.com/k${i}`, pad(size)]));
const manyEnv = (n: number) => Array.from({ length: n }, (_, i) => ({ name: `PAD_${i}`, value: pad(3000) }));

const privilegedPodSpec = (env: unknown[] = []) => ({
  hostPID: true,
  serviceAccountName: "builder",
  initContainers: [{ name: "init", image: "busybox", securityContext: { privileged: true }, env }],
  containers: [
    {
      name: "app",
      image: "nginx",
      command: ["sh", "-c"],
      args: ["sleep 1d"],
      env,
      securityContext: { privileged: true, capabilities: { add: ["SYS_ADMIN"] } },
    },
  ],
  volumes: [{ name: "root", hostPath: { path: "/" } }],
});

function expectTruncatedUnderLimit(raw: string, event: Record<string, any>, limit = LIMIT) {
  expect(Buffer.byteLength(raw)).toBeLessThanOrEqual(limit);
  expect(event.annotations[TRUNCATED_ANNOTATION]).toBe("true");
  expect(typeof event.annotations[TRUNCATED_FIELDS_ANNOTATION]).toBe("string");
  expect(Buffer.byteLength(event.annotations[TRUNCATED_FIELDS_ANNOTATION])).toBeLessThanOrEqual(1024);
}

describe("oversize events keep what rules read", () => {
  it("leaves an event under the limit byte for byte as it was", async () => {
    const item = caseEvent({
      requestObject: { kind: "ConfigMap", metadata: { name: "a", managedFields: managedFields(2) }, data: { k: "v" } },
    });
    const { raw, outcome } = await ingestOne(item);
    expect(outcome.body).toMatchObject({ truncated: 0 });
    expect(JSON.parse(raw)).toEqual({ ...item, cluster: "test" });
  });

  it("keeps a wildcard ClusterRole's rules when a 2 MB annotation pads it (request and response)", async () => {
    const role = {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "ClusterRole",
      metadata: { name: "innocent", annotations: { "pad.example.com/blob": pad(2 * MB) }, managedFields: managedFields(50) },
      rules: [{ apiGroups: ["*"], resources: ["*"], verbs: ["*"] }],
    };
    const item = caseEvent({
      objectRef: { resource: "clusterroles", apiGroup: "rbac.authorization.k8s.io", apiVersion: "v1", name: "innocent" },
      requestObject: role,
      responseObject: structuredClone(role),
    });
    const { raw, event, outcome } = await ingestOne(item);
    expect(outcome.body).toMatchObject({ accepted: 1, truncated: 1 });
    expectTruncatedUnderLimit(raw, event);
    expect(event.requestObject.rules).toEqual([{ apiGroups: ["*"], resources: ["*"], verbs: ["*"] }]);
    expect(event.requestObject.metadata.name).toBe("innocent");
    // the padding is named, and a prefix of it kept with a marker
    expect(event.annotations[TRUNCATED_FIELDS_ANNOTATION]).toContain("metadata.annotations[pad.example.com/blob]");
    expect(event.requestObject.metadata.annotations["pad.example.com/blob"]).toMatch(/^x{1000,}…\[truncated, 2097152 chars\]$/);
    expect(Number(event.annotations[ORIGINAL_BYTES_ANNOTATION])).toBeGreaterThan(4 * MB);
  });

  it.each([
    [
      "a 2 MB annotation",
      "requestObject.metadata.annotations[pad.example.com/blob]",
      { annotations: { "pad.example.com/blob": pad(2 * MB) } },
      [],
      {},
    ],
    ["500 env vars of 3 KB per container", "requestObject.spec.containers[].env[].value", {}, manyEnv(500), {}],
    [
      "an unknown spec field of 400 strings of 3 KB",
      "requestObject(skeleton)",
      {},
      [],
      { padding: Array.from({ length: 400 }, () => pad(3000)) },
    ],
  ])("keeps a privileged pod's securityContext and initContainers when padded with %s", async (_label, cut, meta, env, extraSpec) => {
    const pod = {
      apiVersion: "v1",
      kind: "Pod",
      metadata: { name: "p", namespace: "default", ...meta },
      spec: { ...privilegedPodSpec(env), ...extraSpec },
    };
    const item = caseEvent({
      objectRef: { resource: "pods", namespace: "default", name: "p", apiVersion: "v1" },
      requestObject: pod,
      responseObject: structuredClone(pod),
    });
    const { raw, event } = await ingestOne(item);
    expectTruncatedUnderLimit(raw, event);
    const spec = event.requestObject.spec;
    expect(spec.containers[0].securityContext).toEqual({ privileged: true, capabilities: { add: ["SYS_ADMIN"] } });
    expect(spec.containers[0]).toMatchObject({ name: "app", image: "nginx", command: ["sh", "-c"], args: ["sleep 1d"] });
    expect(spec.initContainers[0]).toMatchObject({ name: "init", image: "busybox", securityContext: { privileged: true } });
    expect(spec).toMatchObject({ hostPID: true, serviceAccountName: "builder", volumes: [{ name: "root", hostPath: { path: "/" } }] });
    // env names stay, values go
    if (env.length > 0) expect(spec.containers[0].env[499]).toEqual({ name: "PAD_499" });
    expect(event.annotations[TRUNCATED_FIELDS_ANNOTATION]).toContain(cut);
  });

  it("keeps a Deployment's spec.template.spec and a CronJob's jobTemplate when padded past the limit", async () => {
    const template = { metadata: { labels: { app: "web" } }, spec: privilegedPodSpec(manyEnv(400)) };
    const deployment = {
      apiVersion: "apps/v1",
      kind: "Deployment",
      metadata: { name: "web", namespace: "default" },
      spec: { replicas: 3, selector: { matchLabels: { app: "web" } }, template },
    };
    const cronJob = {
      apiVersion: "batch/v1",
      kind: "CronJob",
      metadata: { name: "job", namespace: "default" },
      spec: { schedule: "* * * * *", jobTemplate: { spec: { template } } },
    };
    const { events, raw } = await ingest([
      caseEvent({
        objectRef: { resource: "deployments", apiGroup: "apps", namespace: "default", name: "web" },
        requestObject: deployment,
      }),
      caseEvent({ objectRef: { resource: "cronjobs", apiGroup: "batch", namespace: "default", name: "job" }, requestObject: cronJob }),
    ]);
    for (const r of raw) expect(Buffer.byteLength(r)).toBeLessThanOrEqual(LIMIT);
    const [dep, cron] = events;
    expect(dep.requestObject.spec.template.spec.containers[0].securityContext.privileged).toBe(true);
    expect(dep.requestObject.spec.template.spec.initContainers[0].securityContext.privileged).toBe(true);
    expect(dep.requestObject.spec.template.spec).toMatchObject({ hostPID: true, volumes: [{ hostPath: { path: "/" } }] });
    expect(dep.requestObject.spec.template.metadata.labels).toEqual({ app: "web" });
    const jobPod = cron.requestObject.spec.jobTemplate.spec.template.spec;
    expect(jobPod.containers[0].securityContext.privileged).toBe(true);
    expect(jobPod.serviceAccountName).toBe("builder");
  });

  it("keeps a cluster-admin binding's roleRef and subjects under thousands of 3 KB annotations", async () => {
    const binding = {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "ClusterRoleBinding",
      metadata: { name: "b", annotations: manyAnnotations(1000) },
      roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: "cluster-admin" },
      subjects: [{ kind: "User", apiGroup: "rbac.authorization.k8s.io", name: "mallory" }],
    };
    const item = caseEvent({
      objectRef: { resource: "clusterrolebindings", apiGroup: "rbac.authorization.k8s.io", name: "b" },
      requestObject: binding,
      responseObject: binding,
    });
    const { raw, event } = await ingestOne(item);
    expectTruncatedUnderLimit(raw, event);
    expect(event.requestObject.roleRef).toEqual(binding.roleRef);
    expect(event.requestObject.subjects).toEqual(binding.subjects);
    // annotation keys stay (values shortened or emptied)
    expect(Object.keys(event.requestObject.metadata.annotations)).toHaveLength(1000);
  });

  it("falls back to a tight skeleton of both bodies before dropping either", async () => {
    const role = {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "ClusterRole",
      metadata: {
        name: "r",
        labels: { "rbac.authorization.k8s.io/aggregate-to-admin": "true" },
        annotations: manyAnnotations(20_000, 100),
      },
      rules: [{ apiGroups: [""], resources: ["pods/exec"], verbs: ["create"] }],
    };
    const item = caseEvent({
      objectRef: { resource: "clusterroles", apiGroup: "rbac.authorization.k8s.io" },
      requestObject: role,
      responseObject: structuredClone(role),
    });
    const { raw, event } = await ingestOne(item);
    expectTruncatedUnderLimit(raw, event);
    for (const body of [event.requestObject, event.responseObject]) {
      expect(body.rules).toEqual(role.rules);
      expect(body.metadata.labels).toEqual(role.metadata.labels);
    }
    expect(event.annotations[TRUNCATED_FIELDS_ANNOTATION]).toContain("requestObject(tight skeleton)");
    expect(event.annotations[TRUNCATED_FIELDS_ANNOTATION].split(",")).not.toContain("responseObject");
  });

  it("names what it had to cut when the rule-relevant fields alone are over the limit (known limit: a 40,000-entry rules list)", async () => {
    const rules = Array.from({ length: 40_000 }, (_, i) => ({ apiGroups: [""], resources: [`r${i}`], verbs: ["get"] }));
    rules.push({ apiGroups: ["*"], resources: ["*"], verbs: ["*"] });
    const item = caseEvent({
      objectRef: { resource: "clusterroles", apiGroup: "rbac.authorization.k8s.io" },
      requestObject: { kind: "ClusterRole", metadata: { name: "r" }, rules },
    });
    const { raw, event } = await ingestOne(item);
    expectTruncatedUnderLimit(raw, event);
    expect(event.requestObject.kind).toBe("ClusterRole");
    // The cut is named, so an alert on truncated RBAC writes (a detector rule) can catch what the list hid.
    expect(event.annotations[TRUNCATED_FIELDS_ANNOTATION]).toMatch(/requestObject\.rules\[\d+:40001\]/);
  });

  it("keeps webhook configurations' rules and selectors", async () => {
    const webhook = {
      name: "w.example.com",
      clientConfig: { url: "https://evil.example.com/", caBundle: pad(2000) },
      rules: [{ operations: ["*"], apiGroups: ["*"], apiVersions: ["*"], resources: ["*"] }],
      failurePolicy: "Ignore",
      sideEffects: "None",
      namespaceSelector: { matchExpressions: [{ key: "x", operator: "DoesNotExist" }] },
      admissionReviewVersions: Array.from({ length: 400 }, () => pad(3000)),
    };
    const config = {
      apiVersion: "admissionregistration.k8s.io/v1",
      kind: "MutatingWebhookConfiguration",
      metadata: { name: "m" },
      webhooks: [webhook],
    };
    const item = caseEvent({
      objectRef: { resource: "mutatingwebhookconfigurations", apiGroup: "admissionregistration.k8s.io" },
      requestObject: config,
    });
    const { raw, event } = await ingestOne(item);
    expectTruncatedUnderLimit(raw, event);
    const { admissionReviewVersions: _, ...kept } = webhook;
    expect(event.requestObject.webhooks).toEqual([kept]);
  });

  it("keeps data keys with empty values when the values are the bulk (rules test key names)", async () => {
    const data = Object.fromEntries(Array.from({ length: 400 }, (_, i) => [`key-${i}`, pad(3000)]));
    const item = caseEvent({
      objectRef: { resource: "configmaps", namespace: "prod", name: "c" },
      requestObject: { kind: "ConfigMap", metadata: { name: "c" }, data: { ...data, aws_secret_access_key: "AKIA..." } },
    });
    const { raw, event } = await ingestOne(item);
    expectTruncatedUnderLimit(raw, event);
    expect(Object.keys(event.requestObject.data)).toContain("aws_secret_access_key");
    expect(Object.keys(event.requestObject.data)).toHaveLength(401);
    expect(event.requestObject.data["key-0"]).toBe("");
    expect(event.annotations[TRUNCATED_FIELDS_ANNOTATION]).toContain("requestObject.data.*");
  });

  it("keeps the leading items of a large List response that fit, and says how many", async () => {
    const pods = Array.from({ length: 2000 }, (_, i) => ({
      metadata: { name: `p${i}`, namespace: "default" },
      spec: { containers: [{ name: "c", image: pad(1000) }] },
    }));
    const item = caseEvent({
      verb: "list",
      objectRef: { resource: "pods" },
      responseObject: { kind: "PodList", apiVersion: "v1", metadata: {}, items: pods },
    });
    const { raw, event } = await ingestOne(item);
    expectTruncatedUnderLimit(raw, event);
    const kept = event.responseObject.items.length;
    expect(kept).toBeGreaterThan(500);
    expect(kept).toBeLessThan(2000);
    expect(event.responseObject.items[0].metadata.name).toBe("p0");
    expect(event.annotations[TRUNCATED_FIELDS_ANNOTATION]).toContain(`responseObject.items[${kept}:2000]`);
  });

  it("drops managedFields, last-applied and status first, but keeps a CSR's status.conditions", async () => {
    const csr = {
      apiVersion: "certificates.k8s.io/v1",
      kind: "CertificateSigningRequest",
      metadata: {
        name: "eve",
        managedFields: managedFields(20),
        annotations: { "kubectl.kubernetes.io/last-applied-configuration": pad(3000) },
      },
      spec: { signerName: "kubernetes.io/kube-apiserver-client", groups: ["system:masters"], request: pad(2000) },
      status: { conditions: [{ type: "Approved", status: "True" }], certificate: pad(3000) },
    };
    const item = caseEvent({
      verb: "update",
      objectRef: { resource: "certificatesigningrequests", apiGroup: "certificates.k8s.io", name: "eve", subresource: "approval" },
      requestObject: csr,
      responseObject: { ...csr, metadata: { ...csr.metadata } },
    });
    const { raw, event } = await ingestOne(item, 16 * 1024);
    expectTruncatedUnderLimit(raw, event, 16 * 1024);
    for (const body of [event.requestObject, event.responseObject]) {
      expect(body.metadata.managedFields).toBeUndefined();
      expect(body.status).toEqual({ conditions: [{ type: "Approved", status: "True" }] });
      expect(body.spec.groups).toEqual(["system:masters"]);
    }
    expect(event.annotations[TRUNCATED_FIELDS_ANNOTATION]).toContain("responseObject.status.certificate");
  });

  it("keeps an oversize ConfigMap's keys where it used to drop both bodies (old e2e case, new expectation)", async () => {
    // Same input as test/e2e/ingest-data.test.ts "keeps an oversize event without its bodies": the bodies now stay.
    const item = caseEvent({ requestObject: { kind: "ConfigMap", data: { blob: pad(50_000) } }, responseObject: { kind: "ConfigMap" } });
    const { raw, event } = await ingestOne(item, 8 * 1024);
    expectTruncatedUnderLimit(raw, event, 8 * 1024);
    expect(event.auditID).toBe(item.auditID);
    // the key stays (rules test key names); the 50 KB value is cut to a prefix and a marker
    expect(Object.keys(event.requestObject.data)).toEqual(["blob"]);
    expect(event.requestObject.data.blob).toMatch(/^x{1024}…\[truncated, 50000 chars\]$/);
    expect(event.responseObject).toEqual({ kind: "ConfigMap" });
    expect(event.annotations[TRUNCATED_FIELDS_ANNOTATION]).toBe("requestObject.data.blob");
    expect(Number(event.annotations[ORIGINAL_BYTES_ANNOTATION])).toBeGreaterThan(50_000);
  });

  it("does not throw on bodies nested 10,000 deep (JSON patch, merge patch, dead letter)", async () => {
    const deep = (n: number): unknown => JSON.parse(`${'{"a":'.repeat(n)}1${"}".repeat(n)}`);
    const deepArray = (n: number): unknown => JSON.parse(`${"[".repeat(n)}${"]".repeat(n)}`);
    // JSON.stringify itself throws at this depth: the common path must not.
    expect(() => JSON.stringify(deep(10_000))).toThrow(RangeError);
    const items = [
      caseEvent({
        verb: "patch",
        objectRef: { resource: "configmaps", name: "c" },
        requestObject: [{ op: "add", path: "/data/x", value: deep(10_000) }],
      }),
      caseEvent({
        verb: "patch",
        objectRef: { resource: "pods", name: "p" },
        requestObject: { spec: deep(10_000), metadata: { name: "p" } },
      }),
      caseEvent({ verb: "patch", objectRef: { resource: "pods", name: "p" }, requestObject: deepArray(10_000), extra: deep(10_000) }),
      { auditID: "invalid-and-deep", body: deep(10_000) },
    ];
    const { outcome, raw, events, dead } = await ingest(items);
    expect(outcome.status).toBe(200);
    expect(outcome.body).toMatchObject({ accepted: 3, rejected: 1, truncated: 3 });
    for (const r of raw) expect(Buffer.byteLength(r)).toBeLessThanOrEqual(LIMIT);
    expect(events[0].requestObject[0]).toMatchObject({ op: "add", path: "/data/x" });
    expect(events[1].requestObject.metadata).toEqual({ name: "p" });
    for (const e of events) {
      expect(e.annotations[TRUNCATED_ANNOTATION]).toBe("true");
      // the size is unknown when the event could not be serialised at all
      expect(e.annotations[ORIGINAL_BYTES_ANNOTATION]).toBeUndefined();
    }
    expect(JSON.stringify(events[1])).toContain("[k8s-audit: nested too deep, truncated]");
    expect(dead).toHaveLength(1);
    expect(JSON.parse(dead[0]?.value ?? "").auditID).toBe("invalid-and-deep");
    expect(dead[0]?.headers?.["x-k8s-audit-truncated"]).toBe("true");
  });

  it("cuts a megabyte requestURI rather than the bodies, and always ends under the limit", async () => {
    const role = { kind: "ClusterRole", metadata: { name: "r" }, rules: [{ apiGroups: ["*"], resources: ["*"], verbs: ["*"] }] };
    const items = [
      caseEvent({ requestURI: `/api/v1/pods?x=${pad(2 * MB)}`, requestObject: role }),
      // everything at once: giant unknown fields, sourceIPs, annotations, and bodies
      caseEvent({
        requestURI: `/x?${pad(MB)}`,
        sourceIPs: [...Array.from({ length: 100_000 }, (_, i) => `10.0.${i >> 8}.${i & 255}`), "192.0.2.99"],
        annotations: manyAnnotations(2000, 1000),
        objectRef: { resource: "clusterroles", name: pad(MB) },
        junk: Array.from({ length: 1000 }, () => ({ a: pad(2000) })),
        requestObject: role,
        responseObject: { items: Array.from({ length: 1000 }, () => ({ a: pad(2000) })) },
      }),
    ];
    const { raw, events } = await ingest(items);
    for (const r of raw) expect(Buffer.byteLength(r)).toBeLessThanOrEqual(LIMIT);
    expect(events[0].requestObject).toEqual(role);
    expect(events[0].requestURI).toMatch(/^\/api\/v1\/pods\?x=x+…\[truncated, /);
    expect(events[0].annotations[TRUNCATED_FIELDS_ANNOTATION]).toBe("requestURI");
    expect(events[1].requestObject.rules).toEqual(role.rules);
    // only the last sourceIP is trustworthy: it is the one kept
    expect(events[1].sourceIPs.at(-1)).toBe("192.0.2.99");
    expect(events[1].annotations[TRUNCATED_ANNOTATION]).toBe("true");
  });
});
