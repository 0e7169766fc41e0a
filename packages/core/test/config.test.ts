import { describe, expect, it } from "vitest";
import { ConfigError, consumerGroupsOf, loadConfig } from "../src/index.js";

describe("loadConfig", () => {
  it("defaults to the embedded, loopback-only setup", () => {
    const c = loadConfig({});
    expect(c.K8S_AUDIT_LISTEN).toBe("127.0.0.1:8080");
    expect(c.KAFKA_BROKERS).toBeUndefined();
    expect(c.K8S_AUDIT_BODY_LIMIT_BYTES).toBeGreaterThanOrEqual(64 * 1024 * 1024);
    expect(c.K8S_AUDIT_TOPIC_EVENTS).toBe("k8s-audit.events");
  });

  it("gives two pipelines on one Kafka their own consumer groups by prefix", () => {
    expect(consumerGroupsOf(loadConfig({}))).toEqual({
      detector: "k8s-audit-detector",
      windows: "k8s-audit-windows",
      shipper: "k8s-audit-shipper",
    });
    const other = consumerGroupsOf(loadConfig({ K8S_AUDIT_CONSUMER_GROUP_PREFIX: "prod-eu" }));
    expect(Object.values(other)).toEqual(["prod-eu-detector", "prod-eu-windows", "prod-eu-shipper"]);
    expect(() => loadConfig({ K8S_AUDIT_CONSUMER_GROUP_PREFIX: "a b" })).toThrow(/K8S_AUDIT_CONSUMER_GROUP_PREFIX/);
  });

  it("parses broker lists and treats empty variables as unset", () => {
    const c = loadConfig({ KAFKA_BROKERS: "a:9092, b:9093", ELASTICSEARCH_URL: "" });
    expect(c.KAFKA_BROKERS).toEqual(["a:9092", "b:9093"]);
    expect(c.ELASTICSEARCH_URL).toBeUndefined();
  });

  it("names every bad key, echoing values but never secrets", () => {
    let error: ConfigError | undefined;
    try {
      loadConfig({ KAFKA_BROKERS: "nohost", ELASTICSEARCH_URL: "ftp://x", ELASTICSEARCH_API_KEY: "", K8S_AUDIT_ES_NAMESPACE: "Bad-NS" });
    } catch (e) {
      error = e as ConfigError;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect(error?.problems.map((p) => p.key).sort()).toEqual(["ELASTICSEARCH_URL", "K8S_AUDIT_ES_NAMESPACE", "KAFKA_BROKERS"]);
    expect(error?.message).toContain('KAFKA_BROKERS: expected host:port (got "nohost")');
  });

  it("lets explicit overrides (CLI flags) win over the environment", () => {
    expect(loadConfig({ K8S_AUDIT_LISTEN: "0.0.0.0:1" }, { K8S_AUDIT_LISTEN: "127.0.0.1:9" }).K8S_AUDIT_LISTEN).toBe("127.0.0.1:9");
  });
});
