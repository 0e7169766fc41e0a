import { describe, expect, it } from "vitest";
import { requestFailed, requestOutcome } from "../src/index.js";

describe("requestOutcome: the one definition of a failed request", () => {
  it("fails on 4xx/5xx and on an authorization forbid, is unknown without status or decision, succeeds otherwise", () => {
    expect(requestOutcome({ responseStatus: { code: 201 } })).toBe("success");
    expect(requestOutcome({ responseStatus: { code: 403 } })).toBe("failure");
    expect(requestOutcome({ responseStatus: { code: 503 } })).toBe("failure");
    // The apiserver can log the decision on an event whose status is not set yet (ResponseStarted of a watch).
    expect(requestOutcome({ annotations: { "authorization.k8s.io/decision": "forbid" } })).toBe("failure");
    expect(requestOutcome({ annotations: { "authorization.k8s.io/decision": "allow" } })).toBe("success");
    expect(requestOutcome({})).toBe("unknown");
    expect(requestFailed({ responseStatus: { code: 399 } })).toBe(false);
    expect(requestFailed({ responseStatus: { code: 400 } })).toBe(true);
  });
});
