import { readFileSync } from "node:fs";
import { ConfigSchema, topicsOf } from "@k8s-audit/core";
import { ELASTICSEARCH_VERSION, KAFKA_VERSION } from "@k8s-audit/engines";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";

const compose = parse(readFileSync(new URL("../../docker-compose.yml", import.meta.url), "utf8"), { merge: true });
const services = compose.services as Record<string, any>;

/** No engine runs here, so the compose file is kept honest by checking it against what the tests and code use. */
describe("docker-compose.yml", () => {
  it("contains the engines, Kibana, the three stages and a one-shot setup", () => {
    expect(Object.keys(services).sort()).toEqual(["detector", "elasticsearch", "ingest", "kafka", "kibana", "setup", "shipper"]);
    expect(services.setup.restart).toBe("no");
    expect(services.ingest.command).toEqual(["ingest"]);
    expect(services.detector.command).toEqual(["detect"]);
    expect(services.shipper.command).toEqual(["ship"]);
  });

  it("runs the same engine versions as the tests, Kibana matching Elasticsearch", () => {
    expect(services.kafka.image).toBe(`apache/kafka:${KAFKA_VERSION}`);
    expect(services.elasticsearch.image).toBe(`docker.elastic.co/elasticsearch/elasticsearch:${ELASTICSEARCH_VERSION}`);
    expect(services.kibana.image).toBe(`docker.elastic.co/kibana/kibana:${ELASTICSEARCH_VERSION}`);
    expect(services.kafka.environment.KAFKA_PROCESS_ROLES).toBe("broker,controller");
    expect(services.kafka.environment.KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR).toBe(1);
  });

  it("publishes the ports the tests use, on this machine's loopback only", () => {
    expect(services.kafka.ports).toContain("127.0.0.1:9092:9092");
    expect(services.elasticsearch.ports).toContain("127.0.0.1:9200:9200");
    expect(services.ingest.ports).toContain("127.0.0.1:8080:8080");
    for (const [name, service] of Object.entries(services))
      for (const port of (service.ports ?? []) as string[]) expect(port, name).toMatch(/^127\.0\.0\.1:/);
  });

  it("asks the webhook for a bearer token and keeps the spool on a volume", () => {
    expect(services.ingest.environment.K8S_AUDIT_TOKENS_FILE).toBe("/run/secrets/ingest-tokens");
    expect(services.ingest.secrets).toContain("ingest-tokens");
    expect(compose.secrets["ingest-tokens"].file).toBe("./ingest-tokens.txt");
    expect(services.ingest.volumes).toContain("ingest-spool:/var/lib/k8s-audit");
  });

  it("configures the stages only with variables the config schema knows, and the default topic names", () => {
    // Our settings, plus Node's own (a detector's heap limit).
    const known = new Set([...Object.keys(ConfigSchema.shape), "NODE_OPTIONS"]);
    const defaults = ConfigSchema.parse({});
    for (const name of ["ingest", "detector", "shipper"]) {
      const env = services[name].environment as Record<string, string>;
      for (const key of Object.keys(env)) expect(known.has(key), `${name}: ${key}`).toBe(true);
      expect(env.K8S_AUDIT_TOPIC_EVENTS).toBe(defaults.K8S_AUDIT_TOPIC_EVENTS);
      expect(env.K8S_AUDIT_TOPIC_ALERTS).toBe(defaults.K8S_AUDIT_TOPIC_ALERTS);
      expect(env.K8S_AUDIT_TOPIC_DEADLETTER).toBe(defaults.K8S_AUDIT_TOPIC_DEADLETTER);
      expect(env.K8S_AUDIT_TOPIC_WINDOWS).toBe(topicsOf(defaults).windows);
      expect(services[name].build.dockerfile).toBe("packages/cli/Dockerfile");
    }
  });
});
