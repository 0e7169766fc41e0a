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
});
