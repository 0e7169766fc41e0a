import type { Client } from "@elastic/elasticsearch";

export const ALERTS_DATASET = "k8s_audit.alert";

export function alertsDataStream(namespace: string): string {
  return `logs-${ALERTS_DATASET}-${namespace}`;
}

const keyword = { type: "keyword" } as const;
const text = { type: "text" } as const;
const date = { type: "date" } as const;

/** Mappings of the ECS entity fields alerts and raw events share (see ecsEntities in the core package). */
export const ECS_ENTITY_MAPPINGS = {
  source: { properties: { ip: { type: "ip" } } },
  user_agent: { properties: { original: { type: "keyword", ignore_above: 1024 } } },
  orchestrator: {
    properties: {
      type: keyword,
      cluster: { properties: { name: keyword } },
      namespace: keyword,
      resource: { properties: { type: keyword, name: keyword } },
      api_version: keyword,
    },
  },
  related: { properties: { user: keyword, ip: { type: "ip" } } },
} as const;

/**
 * Explicit mappings for every alert field analysts and rules query; core field types only, so the same template works
 * on the minimal test distribution and on a full cluster. `dynamic: false` keeps unexpected fields in _source only.
 */
export const ALERT_MAPPINGS = {
  dynamic: false,
  properties: {
    "@timestamp": date,
    message: { type: "text", fields: { keyword: { type: "keyword", ignore_above: 1024 } } },
    event: {
      properties: {
        kind: keyword,
        id: keyword,
        category: keyword,
        type: keyword,
        action: keyword,
        outcome: keyword,
        severity: { type: "long" },
        risk_score: { type: "float" },
        dataset: keyword,
        module: keyword,
        provider: keyword,
        ingested: date,
        created: date,
        start: date,
        end: date,
        count: { type: "long" },
      },
    },
    rule: {
      properties: {
        id: keyword,
        name: keyword,
        description: text,
        reference: keyword,
        ruleset: keyword,
        version: keyword,
        category: keyword,
      },
    },
    threat: {
      properties: {
        framework: keyword,
        tactic: { properties: { id: keyword, name: keyword, reference: keyword } },
        technique: { properties: { id: keyword, name: keyword, reference: keyword } },
      },
    },
    user: { properties: { name: keyword, id: keyword, roles: keyword } },
    ...ECS_ENTITY_MAPPINGS,
    kubernetes: {
      properties: {
        audit: {
          properties: {
            auditID: keyword,
            verb: keyword,
            requestURI: { type: "keyword", ignore_above: 4096 },
            stage: keyword,
            responseStatus: { properties: { code: { type: "long" } } },
            impersonatedUser: { properties: { username: keyword } },
          },
        },
      },
    },
    labels: { type: "object", dynamic: true },
    data_stream: { properties: { type: keyword, dataset: keyword, namespace: keyword } },
  },
} as const;

/**
 * Installs (or updates) a data stream index template; idempotent. Priority above Elastic's built-in logs-*-* (100), so
 * our explicit mappings win on a full cluster too.
 */
export async function putDataStreamTemplate(
  es: Client,
  name: string,
  pattern: string,
  mappings: object,
  extra: { settings?: Record<string, unknown>; lifecycle?: { data_retention: string } } = {},
): Promise<void> {
  await es.indices.putIndexTemplate({
    name,
    index_patterns: [pattern],
    data_stream: {},
    priority: 200,
    template: {
      settings: { number_of_shards: 1, ...extra.settings },
      ...(extra.lifecycle ? { lifecycle: extra.lifecycle } : {}),
      // biome-ignore lint/suspicious/noExplicitAny: the client's mapping type is stricter than the JSON it accepts.
      mappings: mappings as any,
    },
    _meta: { managed_by: "k8s-audit-pipeline" },
  });
}

/**
 * Makes sure the alert template exists, installing it when missing. It does not overwrite one `k8s-audit setup`
 * installed (which may carry a lifecycle); setup owns updates.
 */
export async function ensureAlertTemplate(es: Client): Promise<void> {
  if (await es.indices.existsIndexTemplate({ name: "k8s-audit-alerts" })) return;
  await putDataStreamTemplate(es, "k8s-audit-alerts", `logs-${ALERTS_DATASET}-*`, ALERT_MAPPINGS);
}
