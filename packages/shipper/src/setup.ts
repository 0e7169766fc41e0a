import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import type { Client } from "@elastic/elasticsearch";
import { EVENTS_DATASET, RAW_EVENT_MAPPINGS } from "./raw-events.js";
import { ALERT_MAPPINGS, ALERTS_DATASET, putDataStreamTemplate } from "./templates.js";

export const KIBANA_OBJECTS_FILE = fileURLToPath(new URL("../kibana/k8s-audit.ndjson", import.meta.url));
export const PROMOTION_RULE_FILE = fileURLToPath(new URL("../kibana/promotion-rule.json", import.meta.url));
const ILM_POLICY = "k8s-audit";

export type LifecycleMode = { kind: "ilm"; policy: string } | { kind: "data-stream-lifecycle"; enforced: boolean };

/**
 * Chooses how old documents expire: an ILM policy where the cluster has ILM, else data stream lifecycle
 * (`lifecycle.data_retention` in the templates). The minimal test distribution has neither service running; the
 * setting is then stored but not enforced, and setup says so.
 */
export async function detectLifecycle(es: Client, retentionDays: number): Promise<LifecycleMode> {
  try {
    await es.ilm.putLifecycle({
      name: ILM_POLICY,
      policy: {
        phases: {
          hot: { actions: { rollover: { max_primary_shard_size: "50gb", max_age: "1d" } } },
          delete: { min_age: `${retentionDays}d`, actions: { delete: {} } },
        },
        _meta: { managed_by: "k8s-audit-pipeline" },
      },
    });
    return { kind: "ilm", policy: ILM_POLICY };
  } catch {
    // No ILM here (serverless, or a distribution without x-pack ILM): fall back to data stream lifecycle.
  }
  try {
    // The data streams module answers this; a cluster without it treats `_data_stream` as an index name.
    await es.transport.request({ method: "GET", path: "/_data_stream/_lifecycle/stats" });
    return { kind: "data-stream-lifecycle", enforced: true };
  } catch {
    return { kind: "data-stream-lifecycle", enforced: false };
  }
}

/** Installs both templates with the lifecycle chosen; idempotent. Returns one line per thing done, for the operator. */
export async function setupElasticsearch(es: Client, options: { retentionDays: number }): Promise<string[]> {
  const lifecycle = await detectLifecycle(es, options.retentionDays);
  const extra =
    lifecycle.kind === "ilm"
      ? { settings: { "index.lifecycle.name": lifecycle.policy } }
      : { lifecycle: { data_retention: `${options.retentionDays}d` } };
  await putDataStreamTemplate(es, "k8s-audit-alerts", `logs-${ALERTS_DATASET}-*`, ALERT_MAPPINGS, extra);
  await putDataStreamTemplate(es, "k8s-audit-events", `logs-${EVENTS_DATASET}-*`, RAW_EVENT_MAPPINGS, extra);
  const lines = [`elasticsearch: index templates installed for logs-${ALERTS_DATASET}-* and logs-${EVENTS_DATASET}-*`];
  if (lifecycle.kind === "ilm")
    lines.push(`elasticsearch: lifecycle: ILM policy ${lifecycle.policy} (rollover daily, delete after ${options.retentionDays} days)`);
  else if (lifecycle.enforced) lines.push(`elasticsearch: lifecycle: data stream lifecycle, retention ${options.retentionDays} days`);
  else
    lines.push(
      `elasticsearch: lifecycle: this cluster has neither ILM nor a running data stream lifecycle; retention ${options.retentionDays} days is set in the templates but not enforced here`,
    );
  return lines;
}

/** Kibana's saved objects and the Security promotion rule. `fetch` is the global one unless given (tests). */
export async function setupKibana(kibanaUrl: string, options: { apiKey?: string; fetch?: typeof fetch } = {}): Promise<string[]> {
  const doFetch = options.fetch ?? fetch;
  const headers: Record<string, string> = {
    "kbn-xsrf": "k8s-audit-pipeline",
    ...(options.apiKey ? { authorization: `ApiKey ${options.apiKey}` } : {}),
  };
  const lines: string[] = [];

  const form = new FormData();
  form.append("file", new Blob([readFileSync(KIBANA_OBJECTS_FILE)], { type: "application/ndjson" }), "k8s-audit.ndjson");
  const imported = await doFetch(`${kibanaUrl}/api/saved_objects/_import?overwrite=true`, { method: "POST", headers, body: form });
  const importBody = (await imported.json().catch(() => ({}))) as { success?: boolean; successCount?: number; errors?: unknown[] };
  if (!imported.ok || importBody.success === false) {
    throw new Error(
      `Kibana refused the saved objects (${imported.status}): ${JSON.stringify(importBody.errors ?? importBody).slice(0, 500)}`,
    );
  }
  lines.push(`kibana: ${importBody.successCount ?? "?"} saved objects imported (data views, dashboard "k8s-audit: overview")`);

  const rule = JSON.parse(readFileSync(PROMOTION_RULE_FILE, "utf8")) as { rule_id: string };
  const jsonHeaders = { ...headers, "content-type": "application/json" };
  let res = await doFetch(`${kibanaUrl}/api/detection_engine/rules`, { method: "POST", headers: jsonHeaders, body: JSON.stringify(rule) });
  if (res.status === 409)
    res = await doFetch(`${kibanaUrl}/api/detection_engine/rules`, { method: "PUT", headers: jsonHeaders, body: JSON.stringify(rule) });
  if (!res.ok) throw new Error(`Kibana refused the promotion rule (${res.status}): ${(await res.text()).slice(0, 500)}`);
  lines.push(
    `kibana: promotion rule ${rule.rule_id} installed: our alerts appear on Security → Alerts with their own rule name and severity`,
  );
  return lines;
}
