import { randomBytes, randomUUID } from "node:crypto";
import { auditEvent } from "./audit-events.js";

/**
 * The planted-secret corpus (issue #12, docs/redaction.md): audit events — and invalid items bound for the dead-letter
 * topic — each carrying unique marker values where real clusters carry credentials. Whatever the pipeline writes
 * (Kafka topics, Elasticsearch, stdout, stderr, alert files) must contain none of them, in plain or base64 form.
 * Markers are fresh per run, so nothing left by an earlier run can make the scan pass or fail.
 */
export interface PlantedCase {
  id: number;
  name: string;
  category: string;
  /** What is posted to the webhook (an audit event, or an invalid item that becomes a dead letter). */
  item: Record<string, unknown> | unknown[] | string;
  /** The marker values planted in it (also planted base64-encoded where Secrets hold base64). */
  markers: string[];
  /** An audit event (true) or a dead letter (false). */
  valid: boolean;
  /** Rules that must still fire on it once redacted: redaction must not blind detection. */
  alerts?: string[];
}

const b64 = (s: string) => Buffer.from(s).toString("base64");

/** Every form of a marker a scan must not find: as planted, base64 (with and without padding). */
export function markerForms(marker: string): string[] {
  const encoded = b64(marker);
  return [marker, encoded, encoded.replace(/=+$/, "")];
}

/** Occurrences of any marker (any form) in a text: `[marker form, case id]` pairs. */
export function findMarkers(text: string, corpus: readonly PlantedCase[]): string[] {
  const found: string[] = [];
  for (const c of corpus)
    for (const m of c.markers) for (const form of markerForms(m)) if (text.includes(form)) found.push(`case ${c.id} (${c.name}): ${form}`);
  return found;
}

function execURI(namespace: string, pod: string, argv: string[], sub = "exec"): string {
  return `/api/v1/namespaces/${namespace}/pods/${pod}/${sub}?${argv.map((a) => `command=${encodeURIComponent(a)}`).join("&")}&container=app&stdin=true&stdout=true&tty=true`;
}

function execEvent(argv: string[], overrides: Record<string, unknown> = {}) {
  return auditEvent({
    level: "Request",
    verb: "create",
    stage: "ResponseStarted",
    requestURI: execURI("default", "web-1", argv),
    objectRef: { resource: "pods", namespace: "default", name: "web-1", apiVersion: "v1", subresource: "exec" },
    responseStatus: { metadata: {}, code: 101 },
    ...overrides,
  });
}

function secretRef(name = "db", namespace = "prod") {
  return { resource: "secrets", namespace, name, apiVersion: "v1" };
}

function pem(marker: string) {
  return `-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA${marker}\nq0s1b2x3c4d5e6f7g8h9\n-----END RSA PRIVATE KEY-----\n`;
}

function jwt(marker: string) {
  return `eyJhbGciOiJSUzI1NiIsImtpZCI6InRlc3QifQ.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQifQ.${marker}`;
}

export function plantedCorpus(run = randomBytes(4).toString("hex")): PlantedCase[] {
  const cases: PlantedCase[] = [];
  let n = 0;
  const add = (
    category: string,
    name: string,
    build: (m: (i?: number) => string) => Record<string, unknown> | unknown[] | string,
    extra: { valid?: boolean; alerts?: string[] } = {},
  ) => {
    const id = ++n;
    const markers: string[] = [];
    const m = (i = 0) => {
      const marker = `PLANTED-${id}x${i}-${run}`;
      if (!markers.includes(marker)) markers.push(marker);
      return marker;
    };
    const item = build(m);
    cases.push({ id, name, category, item, markers, valid: extra.valid ?? true, ...(extra.alerts ? { alerts: extra.alerts } : {}) });
  };

  // --- Secrets as objects --------------------------------------------------------------------------------------
  add(
    "secret",
    "create Secret: data (base64) and stringData, request and response",
    (m) =>
      auditEvent({
        verb: "create",
        requestURI: "/api/v1/namespaces/prod/secrets?fieldManager=kubectl-create",
        objectRef: secretRef(),
        requestObject: {
          kind: "Secret",
          apiVersion: "v1",
          metadata: { name: "db" },
          data: { password: b64(m(0)) },
          stringData: { token: m(1) },
        },
        responseObject: { kind: "Secret", apiVersion: "v1", metadata: { name: "db" }, data: { password: b64(m(0)), token: b64(m(1)) } },
        responseStatus: { metadata: {}, code: 201 },
      }),
    { alerts: ["secret.created"] },
  );
  add("secret", "SecretList response", (m) =>
    auditEvent({
      verb: "list",
      requestURI: "/api/v1/namespaces/prod/secrets",
      objectRef: { resource: "secrets", namespace: "prod", apiVersion: "v1" },
      responseObject: {
        kind: "SecretList",
        apiVersion: "v1",
        items: [
          { metadata: { name: "a" }, data: { k: b64(m(0)) } },
          { metadata: { name: "b" }, data: { k: b64(m(1)) } },
        ],
      },
    }),
  );
  add("secret", "watch event of a Secret", (m) =>
    auditEvent({
      verb: "watch",
      requestURI: "/api/v1/namespaces/prod/secrets?watch=true",
      objectRef: { resource: "secrets", namespace: "prod", apiVersion: "v1" },
      responseObject: { type: "ADDED", object: { kind: "Secret", apiVersion: "v1", metadata: { name: "a" }, data: { k: b64(m()) } } },
    }),
  );
  add("table", "Table with includeObject=Object (kubectl get secrets)", (m) =>
    auditEvent({
      verb: "list",
      requestURI: "/api/v1/namespaces/prod/secrets?limit=500&includeObject=Object",
      objectRef: { resource: "secrets", namespace: "prod", apiVersion: "v1" },
      responseObject: {
        kind: "Table",
        apiVersion: "meta.k8s.io/v1",
        columnDefinitions: [{ name: "Name" }, { name: "Type" }, { name: "Data" }, { name: "Age" }],
        rows: [
          {
            cells: ["db", "Opaque", 1, "5d"],
            object: { kind: "Secret", apiVersion: "v1", metadata: { name: "db" }, data: { password: b64(m(0)) }, type: "Opaque" },
          },
          { cells: ["api", "Opaque", 1, "5d"], object: { metadata: { name: "api" }, data: { key: b64(m(1)) } } },
        ],
      },
    }),
  );
  add("table", "Table of a custom resource with a credential printer column", (m) =>
    auditEvent({
      verb: "list",
      requestURI: "/apis/db.example.com/v1/namespaces/prod/databases",
      objectRef: { resource: "databases", namespace: "prod", apiGroup: "db.example.com", apiVersion: "v1" },
      responseObject: {
        kind: "Table",
        apiVersion: "meta.k8s.io/v1",
        columnDefinitions: [{ name: "Name" }, { name: "Admin Password" }],
        rows: [{ cells: ["main", m()], object: { kind: "PartialObjectMetadata", metadata: { name: "main" } } }],
      },
    }),
  );
  add("last-applied", "Secret with last-applied-configuration", (m) =>
    auditEvent({
      verb: "update",
      requestURI: "/api/v1/namespaces/prod/secrets/db",
      objectRef: secretRef(),
      requestObject: {
        kind: "Secret",
        metadata: {
          name: "db",
          annotations: {
            "kubectl.kubernetes.io/last-applied-configuration": JSON.stringify({
              apiVersion: "v1",
              kind: "Secret",
              data: { password: b64(m(0)) },
              stringData: { raw: m(1) },
            }),
          },
        },
        data: { password: b64(m(0)) },
      },
    }),
  );
  add("last-applied", "Deployment's last-applied holding a credential env value", (m) =>
    auditEvent({
      verb: "patch",
      requestURI: "/apis/apps/v1/namespaces/prod/deployments/web",
      objectRef: { resource: "deployments", namespace: "prod", name: "web", apiGroup: "apps", apiVersion: "v1" },
      requestObject: {
        metadata: {
          annotations: {
            "kubectl.kubernetes.io/last-applied-configuration": JSON.stringify({
              kind: "Deployment",
              spec: { template: { spec: { containers: [{ name: "web", image: "nginx", env: [{ name: "DB_PASSWORD", value: m() }] }] } } },
            }),
          },
        },
      },
    }),
  );
  add("last-applied", "last-applied on a ConfigMap whose copy is a Secret (kind changed)", (m) =>
    auditEvent({
      verb: "update",
      requestURI: "/api/v1/namespaces/prod/configmaps/app",
      objectRef: { resource: "configmaps", namespace: "prod", name: "app", apiVersion: "v1" },
      requestObject: {
        kind: "ConfigMap",
        metadata: {
          name: "app",
          annotations: { "kubectl.kubernetes.io/last-applied-configuration": `{"kind":"Secret","data":{"k":"${b64(m())}"}}` },
        },
        data: { mode: "prod" },
      },
    }),
  );

  // --- Patches ---------------------------------------------------------------------------------------------------
  add(
    "json-patch",
    "JSON patch of /data/password",
    (m) =>
      auditEvent({
        verb: "patch",
        requestURI: "/api/v1/namespaces/prod/secrets/db",
        objectRef: secretRef(),
        requestObject: [{ op: "replace", path: "/data/password", value: b64(m()) }],
      }),
    { alerts: ["secret.modified"] },
  );
  add("json-patch", "JSON patch adding /stringData", (m) =>
    auditEvent({
      verb: "patch",
      requestURI: "/api/v1/namespaces/prod/secrets/db",
      objectRef: secretRef(),
      requestObject: [{ op: "add", path: "/stringData", value: { token: m() } }],
    }),
  );
  add("json-patch", "JSON patch adding /metadata/annotations with last-applied", (m) =>
    auditEvent({
      verb: "patch",
      requestURI: "/api/v1/namespaces/prod/secrets/db",
      objectRef: secretRef(),
      requestObject: [
        {
          op: "add",
          path: "/metadata/annotations",
          value: { "kubectl.kubernetes.io/last-applied-configuration": JSON.stringify({ kind: "Secret", data: { password: b64(m()) } }) },
        },
      ],
    }),
  );
  add("json-patch", "JSON patch adding /metadata with last-applied", (m) =>
    auditEvent({
      verb: "patch",
      requestURI: "/api/v1/namespaces/prod/secrets/db",
      objectRef: secretRef(),
      requestObject: [
        {
          op: "add",
          path: "/metadata",
          value: {
            name: "db",
            annotations: { "kubectl.kubernetes.io/last-applied-configuration": JSON.stringify({ kind: "Secret", stringData: { p: m() } }) },
          },
        },
      ],
    }),
  );
  add("json-patch", "JSON patch replacing / with a whole Secret", (m) =>
    auditEvent({
      verb: "patch",
      requestURI: "/api/v1/namespaces/prod/secrets/db",
      objectRef: secretRef(),
      requestObject: [{ op: "replace", path: "/", value: { kind: "Secret", metadata: { name: "db" }, data: { password: b64(m()) } } }],
    }),
  );
  add("json-patch", "JSON patch of a ConfigMap adding the last-applied annotation by its escaped path", (m) =>
    auditEvent({
      verb: "patch",
      requestURI: "/api/v1/namespaces/prod/configmaps/app",
      objectRef: { resource: "configmaps", namespace: "prod", name: "app", apiVersion: "v1" },
      requestObject: [
        {
          op: "add",
          path: "/metadata/annotations/kubectl.kubernetes.io~1last-applied-configuration",
          value: JSON.stringify({ kind: "Secret", data: { password: b64(m()) } }),
        },
      ],
    }),
  );
  add("json-patch", "JSON patch test op carrying a Secret value", (m) =>
    auditEvent({
      verb: "patch",
      requestURI: "/api/v1/namespaces/prod/secrets/db",
      objectRef: secretRef(),
      requestObject: [
        { op: "test", path: "/data/password", value: b64(m(0)) },
        { op: "replace", path: "/data/password", value: b64(m(1)) },
      ],
    }),
  );
  add("json-patch", "JSON patch of a container env value (name unseen)", (m) =>
    auditEvent({
      verb: "patch",
      requestURI: "/apis/apps/v1/namespaces/prod/deployments/web",
      objectRef: { resource: "deployments", namespace: "prod", name: "web", apiGroup: "apps", apiVersion: "v1" },
      requestObject: [{ op: "replace", path: "/spec/template/spec/containers/0/env/0/value", value: m() }],
    }),
  );
  add("merge-patch", "merge patch of a Secret's data", (m) =>
    auditEvent({
      verb: "patch",
      requestURI: "/api/v1/namespaces/prod/secrets/db",
      objectRef: secretRef(),
      requestObject: { data: { password: b64(m()) } },
    }),
  );
  add("merge-patch", "strategic merge patch of a Secret with $patch and stringData", (m) =>
    auditEvent({
      verb: "patch",
      requestURI: "/api/v1/namespaces/prod/secrets/db",
      objectRef: secretRef(),
      requestObject: { $patch: "replace", stringData: { password: m(0) }, metadata: { labels: { app: "db" } }, data: { other: b64(m(1)) } },
    }),
  );

  // --- String bodies ---------------------------------------------------------------------------------------------
  add("string-body", "server-side apply of a Secret as a YAML string", (m) =>
    auditEvent({
      verb: "patch",
      requestURI: "/api/v1/namespaces/prod/secrets/db?fieldManager=kubectl&force=true",
      objectRef: secretRef(),
      requestObject: `apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\nstringData:\n  password: ${m(0)}\ndata:\n  token: ${b64(m(1))}\n`,
    }),
  );
  add("string-body", "Secret body as a JSON string", (m) =>
    auditEvent({
      verb: "create",
      requestURI: "/api/v1/namespaces/prod/secrets",
      objectRef: secretRef(),
      requestObject: JSON.stringify({ kind: "Secret", data: { password: b64(m()) } }),
    }),
  );
  add("string-body", "unparseable Secret body string", (m) =>
    auditEvent({
      verb: "create",
      requestURI: "/api/v1/namespaces/prod/secrets",
      objectRef: secretRef(),
      requestObject: `kind: Secret\ndata: {password: "${m()}"\n  broken: [`,
    }),
  );
  add("string-body", "ConfigMap value holding a multi-document manifest with a Secret", (m) =>
    auditEvent({
      verb: "create",
      requestURI: "/api/v1/namespaces/prod/configmaps",
      objectRef: { resource: "configmaps", namespace: "prod", name: "bundle", apiVersion: "v1" },
      requestObject: {
        kind: "ConfigMap",
        metadata: { name: "bundle" },
        data: {
          "manifests.yaml": `apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\ndata:\n  a: b\n---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: y\nstringData:\n  pw: ${m()}\n`,
        },
      },
    }),
  );
  add("string-body", "ConfigMap holding a kubeconfig with a token and a client key", (m) =>
    auditEvent({
      verb: "create",
      requestURI: "/api/v1/namespaces/prod/configmaps",
      objectRef: { resource: "configmaps", namespace: "prod", name: "kubeconfig", apiVersion: "v1" },
      requestObject: {
        kind: "ConfigMap",
        metadata: { name: "kubeconfig" },
        data: {
          config: `apiVersion: v1\nkind: Config\nusers:\n- name: ci\n  user:\n    token: ${m(0)}\n    client-key-data: ${b64(m(1))}\n`,
        },
      },
    }),
  );
  add("string-body", "ConfigMap holding a docker config JSON", (m) =>
    auditEvent({
      verb: "create",
      requestURI: "/api/v1/namespaces/prod/configmaps",
      objectRef: { resource: "configmaps", namespace: "prod", name: "registry", apiVersion: "v1" },
      requestObject: {
        kind: "ConfigMap",
        metadata: { name: "registry" },
        data: { "config.json": `{"auths":{"r.example.com":{"auth":"${b64(m())}"}}}` },
      },
    }),
  );

  // --- Secrets inside custom resources and lists ------------------------------------------------------------------
  add("custom-resource", "ExternalSecret template with literal data", (m) =>
    auditEvent({
      verb: "create",
      requestURI: "/apis/external-secrets.io/v1beta1/namespaces/prod/externalsecrets",
      objectRef: { resource: "externalsecrets", namespace: "prod", name: "db", apiGroup: "external-secrets.io", apiVersion: "v1beta1" },
      requestObject: {
        kind: "ExternalSecret",
        apiVersion: "external-secrets.io/v1beta1",
        metadata: { name: "db" },
        spec: {
          secretStoreRef: { name: "vault", kind: "ClusterSecretStore" },
          target: { name: "db", template: { type: "Opaque", data: { "dsn.txt": `postgres://app@db/prod?x=${m(0)}`, fixed: m(1) } } },
          data: [{ secretKey: "password", remoteRef: { key: "prod/db" } }],
        },
      },
    }),
  );
  add("custom-resource", "SealedSecret template data", (m) =>
    auditEvent({
      verb: "create",
      requestURI: "/apis/bitnami.com/v1alpha1/namespaces/prod/sealedsecrets",
      objectRef: { resource: "sealedsecrets", namespace: "prod", name: "db", apiGroup: "bitnami.com", apiVersion: "v1alpha1" },
      requestObject: {
        kind: "SealedSecret",
        metadata: { name: "db" },
        spec: {
          encryptedData: { password: "AgBy3i4OJSWK+PiTySYZZA==" },
          template: { metadata: { name: "db" }, data: { plain: b64(m()) } },
        },
      },
    }),
  );
  add("custom-resource", "a CR's credential-named field (adminPassword)", (m) =>
    auditEvent({
      verb: "create",
      requestURI: "/apis/db.example.com/v1/namespaces/prod/databases",
      objectRef: { resource: "databases", namespace: "prod", name: "main", apiGroup: "db.example.com", apiVersion: "v1" },
      requestObject: {
        kind: "Database",
        metadata: { name: "main" },
        spec: { engine: "postgres", adminPassword: m(0), replication: { clientSecret: m(1) } },
      },
    }),
  );
  add("custom-resource", "Secret embedded in a CR's list of resources (Helm-like bundle)", (m) =>
    auditEvent({
      verb: "create",
      requestURI: "/apis/apps.example.com/v1/namespaces/prod/bundles",
      objectRef: { resource: "bundles", namespace: "prod", name: "b", apiGroup: "apps.example.com", apiVersion: "v1" },
      requestObject: {
        kind: "Bundle",
        spec: {
          resources: [
            { kind: "ConfigMap", data: { a: "b" } },
            { kind: "Secret", metadata: { name: "s" }, data: { k: b64(m()) } },
          ],
        },
      },
    }),
  );
  add("secret", "Helm release Secret", (m) =>
    auditEvent({
      verb: "create",
      requestURI: "/api/v1/namespaces/prod/secrets",
      objectRef: secretRef("sh.helm.release.v1.web.v3"),
      requestObject: {
        kind: "Secret",
        type: "helm.sh/release.v1",
        metadata: { name: "sh.helm.release.v1.web.v3" },
        data: { release: b64(m()) },
      },
    }),
  );
  add("secret", "generic List mixing a Secret (kubectl apply -f list.yaml)", (m) =>
    auditEvent({
      verb: "create",
      requestURI: "/api/v1/namespaces/prod/configmaps",
      objectRef: { resource: "configmaps", namespace: "prod", apiVersion: "v1" },
      requestObject: { kind: "List", items: [{ kind: "Secret", data: { k: b64(m()) } }] },
    }),
  );
  add("token", "bootstrap token Secret (token-secret)", (m) =>
    auditEvent({
      verb: "create",
      requestURI: "/api/v1/namespaces/kube-system/secrets",
      objectRef: secretRef("bootstrap-token-abcdef", "kube-system"),
      requestObject: {
        kind: "Secret",
        type: "bootstrap.kubernetes.io/token",
        metadata: { name: "bootstrap-token-abcdef" },
        stringData: { "token-id": "abcdef", "token-secret": m() },
      },
    }),
  );

  // --- Tokens ----------------------------------------------------------------------------------------------------
  add("token", "TokenRequest status.token", (m) =>
    auditEvent({
      verb: "create",
      requestURI: "/api/v1/namespaces/prod/serviceaccounts/ci/token",
      objectRef: { resource: "serviceaccounts", subresource: "token", namespace: "prod", name: "ci", apiVersion: "v1" },
      requestObject: {
        kind: "TokenRequest",
        apiVersion: "authentication.k8s.io/v1",
        spec: { audiences: ["api"], expirationSeconds: 3600 },
      },
      responseObject: {
        kind: "TokenRequest",
        apiVersion: "authentication.k8s.io/v1",
        status: { token: jwt(m()), expirationTimestamp: "2026-11-28T13:00:00Z" },
      },
      responseStatus: { metadata: {}, code: 201 },
    }),
  );
  add("token", "TokenReview spec.token", (m) =>
    auditEvent({
      verb: "create",
      requestURI: "/apis/authentication.k8s.io/v1/tokenreviews",
      objectRef: { resource: "tokenreviews", apiGroup: "authentication.k8s.io", apiVersion: "v1" },
      requestObject: { kind: "TokenReview", spec: { token: m(0) } },
      responseObject: { kind: "TokenReview", spec: { token: m(0) }, status: { authenticated: true, user: { username: "x" } } },
      responseStatus: { metadata: {}, code: 201 },
    }),
  );
  add("token", "CSR status carrying a token", (m) =>
    auditEvent({
      verb: "update",
      requestURI: "/apis/certificates.k8s.io/v1/certificatesigningrequests/node-csr/status",
      objectRef: {
        resource: "certificatesigningrequests",
        subresource: "status",
        name: "node-csr",
        apiGroup: "certificates.k8s.io",
        apiVersion: "v1",
      },
      requestObject: { kind: "CertificateSigningRequest", status: { token: m(), conditions: [] } },
    }),
  );
  add("token", "JWT in an annotation", (m) =>
    auditEvent({
      verb: "create",
      requestURI: "/api/v1/namespaces/prod/configmaps",
      objectRef: { resource: "configmaps", namespace: "prod", name: "ci", apiVersion: "v1" },
      requestObject: {
        kind: "ConfigMap",
        metadata: { name: "ci", annotations: { "ci.example.com/last-run": jwt(m()) } },
        data: { a: "b" },
      },
    }),
  );

  // --- Pod specs -------------------------------------------------------------------------------------------------
  add("env", "Pod env values named like credentials", (m) =>
    auditEvent({
      verb: "create",
      requestURI: "/api/v1/namespaces/prod/pods",
      objectRef: { resource: "pods", namespace: "prod", name: "app", apiVersion: "v1" },
      requestObject: {
        kind: "Pod",
        metadata: { name: "app" },
        spec: {
          containers: [
            {
              name: "app",
              image: "registry.example.com/app:1.2",
              env: [
                { name: "DB_PASSWORD", value: m(0) },
                { name: "GITHUB_TOKEN", value: m(1) },
                { name: "AWS_SECRET_ACCESS_KEY", value: m(2) },
                { name: "STRIPE_API_KEY", value: m(3) },
                { name: "LOG_LEVEL", value: "debug" },
              ],
            },
          ],
        },
      },
    }),
  );
  add("env", "Deployment template: credential args and env", (m) =>
    auditEvent({
      verb: "create",
      requestURI: "/apis/apps/v1/namespaces/prod/deployments",
      objectRef: { resource: "deployments", namespace: "prod", name: "web", apiGroup: "apps", apiVersion: "v1" },
      requestObject: {
        kind: "Deployment",
        metadata: { name: "web" },
        spec: {
          template: {
            spec: {
              containers: [
                {
                  name: "web",
                  image: "web:2",
                  args: [`--db-password=${m(0)}`, "--api-token", m(1)],
                  env: [{ name: "PRIVATE_KEY", value: m(2) }],
                },
              ],
            },
          },
        },
      },
    }),
  );
  add("env", "privileged pod with a password env still alerts", (m) =>
    auditEvent({
      verb: "create",
      requestURI: "/api/v1/namespaces/prod/pods",
      objectRef: { resource: "pods", namespace: "prod", name: "priv", apiVersion: "v1" },
      requestObject: {
        kind: "Pod",
        metadata: { name: "priv" },
        spec: {
          containers: [
            { name: "x", image: "busybox", securityContext: { privileged: true }, env: [{ name: "ROOT_PASSWORD", value: m() }] },
          ],
        },
      },
      responseStatus: { metadata: {}, code: 201 },
    }),
  );

  // --- PEM keys --------------------------------------------------------------------------------------------------
  add(
    "pem",
    "private key in a ConfigMap (the ConfigMap credentials rule must still fire)",
    (m) =>
      auditEvent({
        verb: "create",
        requestURI: "/api/v1/namespaces/prod/configmaps",
        objectRef: { resource: "configmaps", namespace: "prod", name: "tls", apiVersion: "v1" },
        requestObject: { kind: "ConfigMap", metadata: { name: "tls" }, data: { "tls.key": pem(m()) } },
        responseStatus: { metadata: {}, code: 201 },
      }),
    { alerts: ["configmap.credentials"] },
  );
  add("pem", "private key in a custom resource field", (m) =>
    auditEvent({
      verb: "create",
      requestURI: "/apis/example.com/v1/namespaces/prod/gateways",
      objectRef: { resource: "gateways", namespace: "prod", name: "g", apiGroup: "example.com", apiVersion: "v1" },
      requestObject: {
        kind: "Gateway",
        spec: { tls: { certificate: "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----", material: pem(m()) } },
      },
    }),
  );
  add("pem", "OpenSSH private key cut short (no END line)", (m) =>
    auditEvent({
      verb: "create",
      requestURI: "/api/v1/namespaces/prod/configmaps",
      objectRef: { resource: "configmaps", namespace: "prod", name: "ssh", apiVersion: "v1" },
      requestObject: { kind: "ConfigMap", data: { id: `-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXk${m()}` } },
    }),
  );

  // --- Query parameters --------------------------------------------------------------------------------------------
  const proxy = "/api/v1/namespaces/prod/services/http:web:80/proxy";
  const queryCase = (name: string, query: (m: (i?: number) => string) => string) =>
    add("query", name, (m) =>
      auditEvent({
        verb: "get",
        requestURI: `${proxy}/callback?${query(m)}`,
        objectRef: { resource: "services", subresource: "proxy", namespace: "prod", name: "http:web:80", apiVersion: "v1" },
      }),
    );
  queryCase("access_token", (m) => `access_token=${m()}&page=2`);
  queryCase("pass and pwd", (m) => `user=admin&pass=${m(0)}&pwd=${m(1)}`);
  queryCase("client-secret and client_secret", (m) => `client-secret=${m(0)}&client_secret=${m(1)}`);
  queryCase(
    "S3 presigned URL",
    (m) => `X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=${m(0)}&X-Amz-Security-Token=${m(1)}&X-Amz-Signature=${m(2)}`,
  );
  queryCase("GCS signed URL", (m) => `X-Goog-Algorithm=GOOG4-RSA-SHA256&X-Goog-Signature=${m()}`);
  queryCase("Azure SAS sig and signature", (m) => `sv=2022-11-02&sig=${m(0)}&signature=${m(1)}`);
  queryCase("OAuth code and key", (m) => `code=${m(0)}&state=xyz&key=${m(1)}`);
  queryCase("Password (case-insensitive)", (m) => `Password=${m()}`);
  queryCase("URL with user:password@ in a parameter", (m) => `next=${encodeURIComponent(`https://admin:${m()}@internal.example.com/`)}`);
  add("query", "user:password@ in the request path", (m) =>
    auditEvent({
      verb: "get",
      requestURI: `${proxy}/fetch/https://admin:${m()}@db.internal/`,
      objectRef: { resource: "services", subresource: "proxy", namespace: "prod", name: "http:web:80", apiVersion: "v1" },
    }),
  );

  // --- Exec commands -----------------------------------------------------------------------------------------------
  add("exec", "mysql -p<password> through sh -c", (m) => execEvent(["/bin/sh", "-c", `mysql -uroot -p${m()} -e 'show databases'`]), {
    alerts: ["workload.exec_into_pod"],
  });
  add("exec", "mysql --password as a separate word", (m) => execEvent(["mysql", "--password", m(), "prod"]), {
    alerts: ["workload.exec_into_pod"],
  });
  add("exec", "mysql -p<password> as its own argv word", (m) => execEvent(["mysql", "-uroot", `-p${m()}`]));
  add("exec", "--password= flag", (m) => execEvent(["pg_dump", `--password=${m()}`, "prod"]));
  add("exec", "psql connection URL with a password", (m) => execEvent(["psql", `postgresql://admin:${m()}@db.prod.svc/prod`]));
  add("exec", "env assignment of a credential", (m) => execEvent(["env", `DB_PASSWORD=${m()}`, "./migrate"]));
  add(
    "exec",
    "curl with a bearer token to the metadata service (credentials rule must fire)",
    (m) =>
      execEvent([
        "curl",
        "-H",
        `Authorization: Bearer ${m()}`,
        "http://169.254.169.254/latest/meta-data/iam/security-credentials/node-role",
      ]),
    { alerts: ["workload.exec_cloud_metadata_credentials"] },
  );
  add("exec", "sshpass -p", (m) => execEvent(["sshpass", "-p", m(), "ssh", "root@10.0.0.9"]));
  add(
    "exec",
    "reading the service account token, then exporting a token (credential access must fire)",
    (m) => execEvent(["sh", "-c", `cat /var/run/secrets/kubernetes.io/serviceaccount/token; export TOKEN=${m()}`]),
    { alerts: ["workload.exec_credential_access"] },
  );
  add("exec", "kubectl --token <value> inside a pod", (m) => execEvent(["kubectl", "--token", m(), "get", "secrets", "-A"]));
  add("exec", "curl -u user:password", (m) => execEvent(["curl", "-u", `admin:${m()}`, "http://es:9200/_cat/indices"]));
  add("exec", "a JWT typed into a command", (m) => execEvent(["sh", "-c", `curl -s http://api/ -H 'X-Auth: ${jwt(m())}'`]));

  // --- Error messages ----------------------------------------------------------------------------------------------
  add("message", "apiserver error echoing a Secret's value", (m) =>
    auditEvent({
      verb: "create",
      requestURI: "/api/v1/namespaces/prod/secrets",
      objectRef: secretRef(),
      responseStatus: {
        metadata: {},
        status: "Failure",
        code: 422,
        message: `Secret "db" is invalid: data[pw]: Invalid value: "${m()}": a valid config key must consist of alphanumeric characters`,
      },
    }),
  );
  add("message", "a refused Secret write's Status body echoing the value", (m) =>
    auditEvent({
      verb: "update",
      requestURI: "/api/v1/namespaces/prod/secrets/db",
      objectRef: secretRef(),
      responseStatus: { metadata: {}, status: "Failure", code: 422 },
      responseObject: {
        kind: "Status",
        status: "Failure",
        reason: "Invalid",
        message: `Secret "db" is invalid: data[pw]: Invalid value: "${m()}": a valid config key must consist of alphanumeric characters`,
        code: 422,
      },
    }),
  );
  add("message", "error message with a URL password", (m) =>
    auditEvent({
      verb: "get",
      requestURI: `${proxy}/`,
      objectRef: { resource: "services", subresource: "proxy", namespace: "prod", name: "http:web:80", apiVersion: "v1" },
      responseStatus: {
        metadata: {},
        code: 503,
        message: `error trying to reach service: dial https://svc:${m()}@10.0.0.4:443: connection refused`,
      },
    }),
  );

  // --- Admission webhook patches -----------------------------------------------------------------------------------
  add("annotation", "a mutating webhook's patch annotation injecting a credential env", (m) =>
    auditEvent({
      level: "Request",
      verb: "create",
      requestURI: "/api/v1/namespaces/prod/pods",
      objectRef: { resource: "pods", namespace: "prod", name: "app", apiVersion: "v1" },
      annotations: {
        "authorization.k8s.io/decision": "allow",
        "authorization.k8s.io/reason": "",
        "patch.webhook.admission.k8s.io/round_0_index_0": JSON.stringify({
          configuration: "vault-injector",
          webhook: "inject.vault.example.com",
          patch: [{ op: "add", path: "/spec/containers/0/env/-", value: { name: "VAULT_TOKEN", value: m() } }],
          patchType: "JSONPatch",
        }),
      },
    }),
  );

  // --- Nesting -----------------------------------------------------------------------------------------------------
  add("nesting", "a Secret at the bottom of a body nested 200 deep", (m) => {
    let body: Record<string, unknown> = { kind: "Secret", data: { k: b64(m()) } };
    for (let i = 0; i < 200; i++) body = { nested: body };
    return auditEvent({
      verb: "create",
      requestURI: "/apis/example.com/v1/namespaces/prod/things",
      objectRef: { resource: "things", namespace: "prod", apiGroup: "example.com", apiVersion: "v1" },
      requestObject: { kind: "Thing", spec: body },
    });
  });

  // --- Dead letters (invalid items: redacted before validation) ----------------------------------------------------
  const dead = (name: string, build: (m: (i?: number) => string) => Record<string, unknown> | unknown[] | string) =>
    add("dead-letter", name, build, { valid: false });
  dead("no objectRef, no auditID: a Secret body", (m) => {
    const e = auditEvent({ requestObject: { kind: "Secret", data: { password: b64(m()) } } });
    delete e.objectRef;
    delete e.auditID;
    return e;
  });
  dead("no objectRef nor requestURI: a bare merge patch of data", (m) => ({
    verb: "patch",
    requestObject: { data: { password: b64(m(0)) }, stringData: { t: m(1) } },
  }));
  dead("missing required fields, credential in the URI", (m) => ({ requestURI: `/api/v1/namespaces/prod/pods?token=${m()}`, verb: "get" }));
  dead("wrong types, exec command with a password", (m) => ({
    verb: 42,
    requestURI: execURI("prod", "db-0", ["mysql", `-p${m()}`]),
    objectRef: { resource: "pods", subresource: "exec" },
  }));
  dead("no objectRef: a JSON patch of data", (m) => ({
    stage: "ResponseComplete",
    requestObject: [{ op: "add", path: "/data/password", value: b64(m()) }],
  }));
  dead(
    "a bare string item: a Secret manifest",
    (m) => `apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\nstringData:\n  password: ${m()}\n`,
  );
  dead("a bare string item: an env line", (m) => `DB_PASSWORD=${m()}`);
  dead("an array item holding a Secret", (m) => [{ kind: "Secret", data: { password: b64(m()) } }]);
  dead("no auditID: a TokenRequest response", (m) => {
    const e = auditEvent({
      verb: "create",
      requestURI: "/api/v1/namespaces/prod/serviceaccounts/ci/token",
      objectRef: { resource: "serviceaccounts", subresource: "token", namespace: "prod", name: "ci", apiVersion: "v1" },
      responseObject: { kind: "TokenRequest", status: { token: jwt(m()) } },
    });
    delete e.auditID;
    return e;
  });

  for (const c of cases) if (typeof c.item === "object" && !Array.isArray(c.item) && c.valid) c.item.auditID = randomUUID();
  return cases;
}
