import { describe, expect, it } from "vitest";
import { httpStatusOf, K8sAuditError, WebhookRejectedError } from "../src/index.js";

class TooLargeError extends K8sAuditError {
  constructor() {
    super("too large", { code: "K8S_AUDIT_TEST_TOO_LARGE", statusCode: 413 });
  }
}

describe("K8sAuditError", () => {
  it("carries its class name, code, status and cause", () => {
    const cause = new Error("underneath");
    const err = new K8sAuditError("it broke", { code: "K8S_AUDIT_TEST", cause });
    expect(err).toBeInstanceOf(Error);
    expect([err.name, err.code, err.statusCode, err.cause, err.message]).toEqual([
      "K8sAuditError",
      "K8S_AUDIT_TEST",
      undefined,
      cause,
      "it broke",
    ]);
    const sub = new TooLargeError();
    expect([sub.name, sub.code, sub.statusCode]).toEqual(["TooLargeError", "K8S_AUDIT_TEST_TOO_LARGE", 413]);
    expect(sub).toBeInstanceOf(K8sAuditError);
  });
});

describe("WebhookRejectedError", () => {
  it("keeps the webhook's answer and says whether it is worth sending again", () => {
    const err = new WebhookRejectedError("https://ingest.example/audit", 503);
    expect([err.name, err.code, err.status, err.url, err.message]).toEqual([
      "WebhookRejectedError",
      "K8S_AUDIT_WEBHOOK_REJECTED",
      503,
      "https://ingest.example/audit",
      "webhook answered 503",
    ]);
    // The webhook's status is not ours to answer with.
    expect(err.statusCode).toBeUndefined();
    const retryable = (status: number) => new WebhookRejectedError("u", status).retryable;
    expect([429, 500, 502, 503].map(retryable)).toEqual([true, true, true, true]);
    expect([301, 400, 401, 403, 404, 413, 415, 451].map(retryable)).toEqual([false, false, false, false, false, false, false, false]);
  });
});

describe("httpStatusOf", () => {
  it("reads the status from our classes and from errors that carry one (Fastify's)", () => {
    expect(httpStatusOf(new TooLargeError())).toBe(413);
    const fastifyLike = Object.assign(new Error("Request body is too large"), { code: "FST_ERR_CTP_BODY_TOO_LARGE", statusCode: 413 });
    expect(httpStatusOf(fastifyLike)).toBe(413);
    expect(httpStatusOf(new K8sAuditError("no status", { code: "K8S_AUDIT_TEST" }))).toBeUndefined();
    expect(httpStatusOf(new Error("plain"))).toBeUndefined();
    expect(httpStatusOf(Object.assign(new Error("odd"), { statusCode: "413" }))).toBeUndefined();
    expect(httpStatusOf({ statusCode: 400 })).toBeUndefined();
    expect(httpStatusOf(undefined)).toBeUndefined();
  });
});
