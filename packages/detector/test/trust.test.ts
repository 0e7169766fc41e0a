import type { Alert, AuditEvent } from "@k8s-audit/core";
import { authenticatedUser, effectiveUser, jsonPatchAsObject, loadDetection, refusal } from "@k8s-audit/rules";
import { parsedAuditEvent } from "@k8s-audit/testkit";
import { MISSING_KEY_PART, StormAggregator } from "@k8s-audit/windows";
import { describe, expect, it } from "vitest";
import { Detector } from "../src/index.js";

/** Requests judged by what they did, who did them and when: the engine's side of issue #11. Events written for this test. */
const pack = loadDetection();
const T0 = Date.UTC(2026, 8, 1, 8, 0, 0);

/** Alice listing secrets in prod of cluster `a` at `at`, with no user agent or annotations unless `fields` say so. */
function event(fields: Record<string, unknown>, at: number, id: string): AuditEvent {
  return parsedAuditEvent({
    level: "Metadata",
    auditID: id,
    requestURI: "/api/v1/namespaces/prod/secrets",
    user: { username: "alice", groups: ["system:authenticated"] },
    sourceIPs: ["192.0.2.10"],
    userAgent: undefined,
    objectRef: { resource: "secrets", namespace: "prod", apiVersion: "v1" },
    responseStatus: { code: 200 },
    requestReceivedTimestamp: new Date(at - 3).toISOString(),
    stageTimestamp: new Date(at).toISOString(),
    annotations: undefined,
    cluster: "a",
    ...fields,
  });
}

/** 25 forbidden requests a second apart by `user` in `cluster`, from `start`. */
const forbiddenBurst = (cluster: string, user: string, start: number) =>
  Array.from({ length: 25 }, (_, i) =>
    event(
      { cluster, user: { username: user }, responseStatus: { code: 403 }, annotations: { "authorization.k8s.io/decision": "forbid" } },
      start + i * 1000,
      `${cluster}-${user}-${i}`,
    ),
  );

function run(events: AuditEvent[], detector = new Detector(pack.rules, { windowRules: pack.windowRules })): Alert[] {
  return [...events.flatMap((e) => detector.evaluate(e)), ...detector.flush()];
}
const windowKeys = (alerts: Alert[], rule: string) =>
  alerts
    .filter((a) => a.rule.id === rule)
    .map((a) => a.labels?.window_key)
    .sort();

describe("time you can trust", () => {
  it("one far-future event does not blind the timed rules, for its cluster or any other", () => {
    const future = event({ cluster: "a" }, Date.UTC(2100, 0, 1), "from-the-future");
    const alerts = run([
      ...forbiddenBurst("a", "mallory", T0).slice(0, 5),
      future,
      ...forbiddenBurst("a", "mallory", T0).slice(5),
      ...forbiddenBurst("b", "eve", T0),
    ]);
    expect(windowKeys(alerts, "auth.forbidden_burst")).toEqual(["a|mallory", "b|eve"]);
  });

  it("counts the untrusted event, and still judges it with the per-event rules", () => {
    const detector = new Detector(pack.rules, { windowRules: pack.windowRules });
    const alerts = detector.evaluate(event({ userAgent: "kube-hunter/0.6" }, Date.UTC(2100, 0, 1), "x"));
    expect(detector.windows?.stats.futureEvents).toBeGreaterThan(0);
    expect(alerts.map((a) => a.rule.id)).toContain("access.attack_tool_user_agent");
  });

  it("takes the allowed skew from its options (K8S_AUDIT_MAX_CLOCK_SKEW_SECONDS)", () => {
    const now = Date.now();
    const ahead = (skewMs: number) => {
      const detector = new Detector(pack.rules, { windowRules: pack.windowRules, maxFutureSkewMs: skewMs });
      detector.evaluate(event({}, now + 120_000, "two-minutes-ahead"));
      return detector.windows?.stats.futureEvents;
    };
    expect(ahead(60_000)).toBeGreaterThan(0);
    expect(ahead(300_000)).toBe(0);
  });

  it("keeps one event-time clock per cluster: a cluster whose clock runs ahead does not make another's events late", () => {
    // Cluster a's clock is four minutes ahead; its events arrive before cluster b's burst.
    const ahead = Array.from({ length: 30 }, (_, i) => event({ cluster: "a" }, T0 + 4 * 60_000 + i * 1000, `ahead-${i}`));
    const alerts = run([...ahead, ...forbiddenBurst("b", "eve", T0)]);
    expect(windowKeys(alerts, "auth.forbidden_burst")).toEqual(["b|eve"]);
  });

  it("counts an event without a group-by value under an explicit key instead of dropping it", () => {
    const anonymous = Array.from({ length: 25 }, (_, i) =>
      event(
        {
          user: {},
          sourceIPs: null,
          stage: "ResponseStarted",
          responseStatus: { code: 401, message: "Authentication failed, attempted: bearer" },
        },
        T0 + i * 1000,
        `nobody-${i}`,
      ),
    );
    expect(windowKeys(run(anonymous), "auth.unauthenticated_burst")).toEqual([`a|${MISSING_KEY_PART}`]);
  });
});

describe("storms fold the same way whatever the arrival order", () => {
  it("gives the same ids and counts, and the summary names the earliest request", () => {
    const alerts = Array.from({ length: 6 }, (_, i) => {
      const [a] = new Detector(
        pack.rules.filter((r) => r.definition.id === "secret.read_by_suspicious_user_agent"),
        { stormWindowMs: 0 },
      ).evaluate(
        event(
          { userAgent: "curl/8.5.0", verb: "get", objectRef: { resource: "secrets", namespace: "prod", name: `s${i}`, apiVersion: "v1" } },
          T0 + i * 5000,
          `curl-${i}`,
        ),
      );
      return a as Alert;
    });
    const fold = (order: Alert[]) => {
      const storms = new StormAggregator(60_000);
      const out: Alert[] = [];
      for (const a of order) {
        const { emit, closed } = storms.offer(a, Date.parse(a["@timestamp"]));
        if (emit) out.push(emit);
        out.push(...closed);
      }
      out.push(...storms.flush());
      return out.map((a) => `${a.event.id} ${a.event.count ?? 1} ${a.event.count ? a.kubernetes.audit.auditID[0] : ""}`).sort();
    };
    const inOrder = fold(alerts);
    expect(fold([...alerts].reverse())).toEqual(inOrder);
    expect(fold([alerts[3], alerts[0], alerts[5], alerts[1], alerts[4], alerts[2]] as Alert[])).toEqual(inOrder);
    expect(inOrder).toHaveLength(2);
    expect(inOrder.some((l) => l.endsWith(" 6 curl-0"))).toBe(true);
  });
});

/** `kubectl create clusterrolebinding backdoor --clusterrole=cluster-admin --user=eve`, without its outcome. */
const backdoorBinding = {
  verb: "create",
  requestURI: "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
  objectRef: { resource: "clusterrolebindings", apiGroup: "rbac.authorization.k8s.io", apiVersion: "v1", name: "backdoor" },
  requestObject: {
    kind: "ClusterRoleBinding",
    roleRef: { kind: "ClusterRole", name: "cluster-admin" },
    subjects: [{ kind: "User", name: "eve" }],
  },
};

describe("what a request really did", () => {
  it("lays a JSON patch out as the object it writes", () => {
    const patched = jsonPatchAsObject([
      { op: "add", path: "/spec/template/spec/containers/1", value: { name: "x", securityContext: { privileged: true } } },
      { op: "add", path: "/subjects/-", value: { kind: "User", name: "eve" } },
      { op: "replace", path: "/metadata/annotations/a~1b", value: "c" },
      { op: "remove", path: "/spec/replicas" },
      { op: "add", path: "/__proto__/polluted", value: true },
    ]);
    expect(patched).toEqual({
      spec: { template: { spec: { containers: [undefined, { name: "x", securityContext: { privileged: true } }] } } },
      subjects: [{ kind: "User", name: "eve" }],
      metadata: { annotations: { "a/b": "c" } },
    });
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it("does not let a hostile index build a huge array", () => {
    const patched = jsonPatchAsObject([{ op: "add", path: "/spec/containers/99999999", value: { securityContext: { privileged: true } } }]);
    expect(patched).toEqual({ spec: { containers: [{ securityContext: { privileged: true } }] } });
  });

  it("judges the impersonated identity, and names both", () => {
    const impersonating = event(
      { user: { username: "mallory" }, impersonatedUser: { username: "system:serviceaccount:kube-system:replicaset-controller" } },
      T0,
      "imp",
    );
    expect(effectiveUser(impersonating).username).toBe("system:serviceaccount:kube-system:replicaset-controller");
    expect(authenticatedUser(impersonating).username).toBe("mallory");
  });

  it("tells a refusal by authorization or admission from other failures", () => {
    expect(
      refusal(
        event(
          {
            responseStatus: { code: 403 },
            annotations: { "authorization.k8s.io/decision": "forbid", "authorization.k8s.io/reason": "no RBAC" },
          },
          T0,
          "r1",
        ),
      ),
    ).toBe("forbidden by authorization: no RBAC");
    expect(
      refusal(
        event(
          { responseStatus: { code: 403, message: 'pods "p" is forbidden: violates PodSecurity "baseline:latest": privileged' } },
          T0,
          "r2",
        ),
      ),
    ).toMatch(/^refused by admission/);
    expect(
      refusal(event({ responseStatus: { code: 400, message: 'admission webhook "policy.example.com" denied the request' } }, T0, "r3")),
    ).toMatch(/^refused by admission/);
    expect(refusal(event({ responseStatus: { code: 404 } }, T0, "r4"))).toBeUndefined();
    expect(refusal(event({ responseStatus: { code: 409 } }, T0, "r5"))).toBeUndefined();
    expect(refusal(event({ responseStatus: { code: 500 } }, T0, "r6"))).toBeUndefined();
  });

  it("raises an attempt alert one severity lower, with the reason, for a refused request a medium+ rule would flag", () => {
    const binding = {
      ...backdoorBinding,
      responseStatus: { code: 403, message: 'admission webhook "guard" denied the request' },
    };
    const alerts = new Detector(pack.rules).evaluate(event(binding, T0, "refused"));
    const attempt = alerts.find((a) => a.rule.id === "rbac.binding_to_cluster_admin.attempt");
    expect(attempt?.event.severity).toBe(47);
    expect(attempt?.event.reason).toContain("denied the request");
    expect(alerts.some((a) => a.rule.id === "rbac.binding_to_cluster_admin")).toBe(false);
  });

  it("never lets a reused auditID hide a second request", () => {
    const detector = new Detector(pack.rules, { stormWindowMs: 0 });
    const dryRun = event({ verb: "get", objectRef: { resource: "configmaps", namespace: "prod", apiVersion: "v1" } }, T0, "same-id");
    const real = event(
      {
        ...backdoorBinding,
        responseStatus: { code: 201 },
      },
      T0 + 5000,
      "same-id",
    );
    const again = event({ ...real, requestReceivedTimestamp: new Date(T0 + 9000).toISOString() }, T0 + 9010, "same-id");
    detector.evaluate(dryRun);
    const first = detector.evaluate(real).filter((a) => a.rule.id === "rbac.binding_to_cluster_admin");
    const second = detector.evaluate(again).filter((a) => a.rule.id === "rbac.binding_to_cluster_admin");
    expect(first).toHaveLength(1);
    expect(second).toHaveLength(1);
    expect(second[0]?.event.id).not.toBe(first[0]?.event.id);
  });
});
