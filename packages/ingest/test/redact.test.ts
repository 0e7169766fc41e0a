import { redactValue } from "@k8s-audit/core";
import { describe, expect, it } from "vitest";
import { REDACTED, REDACTED_ANNOTATION, redactEvent, redactRequestURI } from "../src/index.js";

const secretRef = { resource: "secrets", namespace: "prod", name: "db", apiVersion: "v1" };
const SECRET = "czNjcjN0LXZhbHVl";

function secretEvent(extra: Record<string, unknown>) {
  return { verb: "create", objectRef: secretRef, requestURI: "/api/v1/namespaces/prod/secrets", ...extra } as Record<string, any>;
}

describe("redaction", () => {
  it("removes data and stringData values of a Secret, keeping the keys, and marks the event", () => {
    const e = secretEvent({
      requestObject: { kind: "Secret", data: { password: SECRET, user: "YWRtaW4=" }, stringData: { token: "plain" } },
      responseObject: { kind: "Secret", data: { password: SECRET, user: "YWRtaW4=" } },
    });
    expect(redactEvent(e)).toEqual(["requestObject.data", "requestObject.stringData", "responseObject.data"]);
    expect(e.requestObject.data).toEqual({ password: REDACTED, user: REDACTED });
    expect(e.requestObject.stringData).toEqual({ token: REDACTED });
    expect(e.annotations[REDACTED_ANNOTATION]).toBe("requestObject.data,requestObject.stringData,responseObject.data");
    expect(JSON.stringify(e)).not.toContain(SECRET);
  });

  it("redacts the last-applied-configuration annotation, which holds a full copy", () => {
    const applied = JSON.stringify({ kind: "Secret", data: { password: SECRET } });
    const e = secretEvent({
      requestObject: { kind: "Secret", metadata: { annotations: { "kubectl.kubernetes.io/last-applied-configuration": applied } } },
    });
    redactEvent(e);
    expect(JSON.stringify(e)).not.toContain(SECRET);
  });

  it("redacts every item of a SecretList and watch events", () => {
    const e = secretEvent({
      verb: "list",
      responseObject: { kind: "SecretList", items: [{ data: { a: SECRET } }, { data: { b: SECRET } }] },
    });
    redactEvent(e);
    expect(JSON.stringify(e)).not.toContain(SECRET);
    const w = secretEvent({ verb: "watch", responseObject: { type: "ADDED", object: { kind: "Secret", data: { a: SECRET } } } });
    redactEvent(w);
    expect(JSON.stringify(w)).not.toContain(SECRET);
  });

  it("redacts merge patches and JSON patches of Secrets", () => {
    const merge = secretEvent({ verb: "patch", requestObject: { data: { password: SECRET } } });
    redactEvent(merge);
    expect(merge.requestObject.data.password).toBe(REDACTED);
    const json = secretEvent({
      verb: "patch",
      requestObject: [
        { op: "replace", path: "/data/password", value: SECRET },
        { op: "add", path: "/stringData", value: { token: SECRET } },
        { op: "replace", path: "/metadata/labels/app", value: "web" },
      ],
    });
    redactEvent(json);
    expect(JSON.stringify(json)).not.toContain(SECRET);
    expect(json.requestObject[2].value).toBe("web");
  });

  it("redacts Secrets inside a generic List", () => {
    const e = {
      verb: "create",
      objectRef: { resource: "configmaps" },
      requestObject: { kind: "List", items: [{ kind: "Secret", data: { k: SECRET } }] },
    };
    redactEvent(e);
    expect(JSON.stringify(e)).not.toContain(SECRET);
  });

  it("redacts tokens of TokenRequest and TokenReview", () => {
    const tr = {
      objectRef: { resource: "serviceaccounts", subresource: "token", name: "default" },
      responseObject: { kind: "TokenRequest", status: { token: "eyJhbGciOi.payload.sig", expirationTimestamp: "x" } },
    } as Record<string, any>;
    redactEvent(tr);
    expect(tr.responseObject.status.token).toBe(REDACTED);
    expect(tr.responseObject.status.expirationTimestamp).toBe("x");
    const review = {
      objectRef: { resource: "tokenreviews", apiGroup: "authentication.k8s.io" },
      requestObject: { kind: "TokenReview", spec: { token: "eyJ.secret.token" } },
      responseObject: { kind: "TokenReview", spec: { token: "eyJ.secret.token" }, status: { authenticated: true } },
    } as Record<string, any>;
    redactEvent(review);
    expect(JSON.stringify(review)).not.toContain("eyJ.secret.token");
  });

  it("redacts credentials in the request URI but keeps exec commands", () => {
    expect(redactRequestURI("/api/v1/x?access_token=abc&watch=true").uri).toBe("/api/v1/x?access_token=%5BREDACTED%5D&watch=true");
    expect(redactRequestURI("/api/v1/namespaces/a/pods/p/exec?command=sh&stdin=true").redacted).toBe(false);
  });

  it("leaves ConfigMaps and other kinds alone (rules need their content)", () => {
    const e = { objectRef: { resource: "configmaps" }, requestObject: { kind: "ConfigMap", data: { key: "value" } } };
    expect(redactEvent(e)).toEqual([]);
    expect(e.requestObject.data.key).toBe("value");
  });

  it("walks a body nested 10,000 deep without a stack (objects and lists) and finds the Secret at the bottom", () => {
    let body: unknown = { kind: "Secret", data: { k: SECRET } };
    for (let i = 0; i < 10_000; i++) body = i % 2 ? { nested: body } : [body];
    const e = { objectRef: { resource: "things", apiGroup: "example.com" }, requestObject: body } as Record<string, any>;
    expect(() => redactEvent(e)).not.toThrow();
    let node: any = e.requestObject;
    while (node && !("kind" in node)) node = Array.isArray(node) ? node[0] : node.nested;
    expect(node.data.k).toBe(REDACTED);
    // The listed path is capped, whatever the depth.
    expect(e.annotations[REDACTED_ANNOTATION].length).toBeLessThan(300);
  });

  it("keeps an exec command's shape and binaries and references, removing only the secret parts", () => {
    const uri = (argv: string[]) =>
      `/api/v1/namespaces/a/pods/p/exec?${argv.map((a) => `command=${encodeURIComponent(a)}`).join("&")}&stdin=true`;
    const decoded = (u: string) => new URLSearchParams(u.slice(u.indexOf("?") + 1)).getAll("command");
    expect(decoded(redactRequestURI(uri(["sh", "-c", "mysql -uroot -pS3cr3tPass -e 'show databases'"])).uri)).toEqual([
      "sh",
      "-c",
      `mysql -uroot -p${REDACTED} -e 'show databases'`,
    ]);
    expect(decoded(redactRequestURI(uri(["psql", "postgres://app:S3cr3tPass@db/prod"])).uri)).toEqual([
      "psql",
      `postgres://app:${REDACTED}@db/prod`,
    ]);
    expect(decoded(redactRequestURI(uri(["kubectl", "--token", "S3cr3tPass", "get", "pods"])).uri)).toEqual([
      "kubectl",
      "--token",
      REDACTED,
      "get",
      "pods",
    ]);
    expect(decoded(redactRequestURI(uri(["env", "DB_PASSWORD=S3cr3tPass", "./app"])).uri)).toEqual([
      "env",
      `DB_PASSWORD=${REDACTED}`,
      "./app",
    ]);
    // What rules read stays: a token taken from the metadata service by command substitution, the files read.
    const kept = uri(["sh", "-c", "TOKEN=$(curl -sX PUT http://169.254.169.254/latest/api/token); cat /var/run/secrets/x/token"]);
    expect(redactRequestURI(kept)).toEqual({ uri: kept, redacted: false });
    const grep = uri(["grep", "-ri", "aws_secret_access_key", "/"]);
    expect(redactRequestURI(grep).redacted).toBe(false);
  });

  it("redacts credential query parameters by name, case and separator insensitively, and user:password@ anywhere", () => {
    for (const name of [
      "pass",
      "pwd",
      "sig",
      "signature",
      "client-secret",
      "Client_Secret",
      "X-Amz-Signature",
      "x-amz-credential",
      "X-Amz-Security-Token",
      "X-Goog-Signature",
      "code",
      "key",
      "api-key",
      "refresh_token",
    ])
      expect(redactRequestURI(`/api/v1/namespaces/a/services/s/proxy/x?${name}=abc123&page=2`).uri, name).toBe(
        `/api/v1/namespaces/a/services/s/proxy/x?${name}=%5BREDACTED%5D&page=2`,
      );
    expect(redactRequestURI("/api/v1/namespaces/a/services/s/proxy/https://u:pw123456@h/").uri).toBe(
      `/api/v1/namespaces/a/services/s/proxy/https://u:${REDACTED}@h/`,
    );
    const plain = "/api/v1/namespaces/a/pods?labelSelector=app%3Dtoken-cleaner&limit=500&resourceVersion=123";
    expect(redactRequestURI(plain)).toEqual({ uri: plain, redacted: false });
  });

  it("keeps what rules and analysts read: images, secret references, non-credential env, certificates, ConfigMap key names", () => {
    const pod = {
      objectRef: { resource: "pods", namespace: "a" },
      requestObject: {
        kind: "Pod",
        spec: {
          volumes: [{ name: "s", secret: { secretName: "db-password" } }],
          containers: [
            {
              name: "c",
              image: "example.com/vault-auth:1.0",
              env: [
                { name: "LOG_LEVEL", value: "debug" },
                { name: "DB_PASSWORD_FILE", value: "/run/secrets/db" },
                { name: "DB_PASSWORD", valueFrom: { secretKeyRef: { name: "db", key: "password" } } },
                { name: "API_TOKEN", value: "tok-123456" },
              ],
              args: ["--config=/etc/app.yaml", "--secret-name=db"],
            },
          ],
        },
      },
    } as Record<string, any>;
    redactEvent(pod);
    const c = pod.requestObject.spec.containers[0];
    expect(c.image).toBe("example.com/vault-auth:1.0");
    expect(c.env.map((v: any) => v.value)).toEqual(["debug", "/run/secrets/db", undefined, REDACTED]);
    expect(c.env[2].valueFrom.secretKeyRef.key).toBe("password");
    expect(c.args).toEqual(["--config=/etc/app.yaml", "--secret-name=db"]);
    expect(pod.requestObject.spec.volumes[0].secret.secretName).toBe("db-password");

    const cm = {
      objectRef: { resource: "configmaps" },
      requestObject: {
        kind: "ConfigMap",
        data: {
          "tls.key": "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEabcdef\n-----END EC PRIVATE KEY-----",
          "ca.crt": "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----",
          aws_secret_access_key: "wJalrXUtnFEMI",
        },
      },
    } as Record<string, any>;
    redactEvent(cm);
    // The ConfigMap credentials rule looks for the key names and the PEM armour: both kept.
    expect(cm.requestObject.data["tls.key"]).toBe(`-----BEGIN EC PRIVATE KEY-----${REDACTED}-----END EC PRIVATE KEY-----`);
    expect(cm.requestObject.data["ca.crt"]).toContain("MIIB");
    expect(cm.requestObject.data.aws_secret_access_key).toBe(REDACTED);
  });

  it("lists at most 50 redacted paths in the annotation", () => {
    const e = secretEvent({
      verb: "list",
      responseObject: { kind: "SecretList", items: Array.from({ length: 200 }, () => ({ data: { a: SECRET } })) },
    });
    expect(redactEvent(e)).toHaveLength(200);
    const listed = e.annotations[REDACTED_ANNOTATION].split(",");
    expect(listed).toHaveLength(51);
    expect(listed[50]).toBe("+150 more");
  });

  it("redactValue replaces a bare string item (which cannot be redacted in place)", () => {
    expect(redactValue(`kind: Secret\ndata:\n  k: ${SECRET}\n`).value).toBe(`kind: Secret\ndata:\n  k: "${REDACTED}"\n`);
    expect(redactValue(`not a manifest ${SECRET}`).value).toBe(REDACTED);
    const object = { requestObject: { kind: "Secret", data: { k: SECRET } } };
    expect(redactValue(object).value).toBe(object);
    expect(JSON.stringify(object)).not.toContain(SECRET);
  });
});
