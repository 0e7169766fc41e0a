import { readFileSync } from "node:fs";
import { ELASTICSEARCH_VERSION } from "@k8s-audit/engines";
import { ALERT_MAPPINGS, KIBANA_OBJECTS_FILE, PROMOTION_RULE_FILE, RAW_EVENT_MAPPINGS } from "@k8s-audit/shipper";
import { describe, expect, it } from "vitest";

const objects = readFileSync(KIBANA_OBJECTS_FILE, "utf8")
  .trim()
  .split("\n")
  .map((l) => JSON.parse(l));
const byKey = new Map(objects.map((o) => [`${o.type}:${o.id}`, o]));

const versionLte = (a: string, b: string) => {
  const pa = a.split(".").map(Number);
  const pb = b.split(".").map(Number);
  for (let i = 0; i < 3; i++) if ((pa[i] ?? 0) !== (pb[i] ?? 0)) return (pa[i] ?? 0) < (pb[i] ?? 0);
  return true;
};

/** Whether a dotted field is mapped in one of our templates. */
function mapped(mappings: { properties: Record<string, any> }, field: string): boolean {
  let node: any = mappings;
  for (const part of field.split(".")) {
    node = node?.properties?.[part];
    if (!node) return false;
  }
  return Boolean(node.type);
}

describe("Kibana saved objects (NDJSON)", () => {
  it("has the data views, visualizations, the recent-alerts search and the dashboard", () => {
    expect(objects.map((o) => o.type).sort()).toEqual(
      ["dashboard", "index-pattern", "index-pattern", "search", ...Array(6).fill("visualization")].sort(),
    );
    expect(byKey.get("index-pattern:k8s-audit-alerts")?.attributes.title).toBe("logs-k8s_audit.alert-*");
    expect(byKey.get("index-pattern:k8s-audit-events")?.attributes.title).toBe("logs-k8s_audit.events-*");
  });

  it("resolves every reference inside the file, and the dashboard's panels to its references", () => {
    for (const o of objects) {
      for (const ref of o.references) expect(byKey.has(`${ref.type}:${ref.id}`), `${o.id} → ${ref.type}:${ref.id}`).toBe(true);
    }
    const dashboard = byKey.get("dashboard:k8s-audit-overview");
    const refNames = new Set(dashboard.references.map((r: { name: string }) => r.name));
    for (const panel of JSON.parse(dashboard.attributes.panelsJSON)) expect(refNames.has(panel.panelRefName)).toBe(true);
  });

  it("declares migration versions no newer than the Kibana we pair with (imports go to the same or a newer Kibana only)", () => {
    for (const o of objects) {
      expect(versionLte(o.coreMigrationVersion, ELASTICSEARCH_VERSION), o.id).toBe(true);
      expect(versionLte(o.typeMigrationVersion, ELASTICSEARCH_VERSION), o.id).toBe(true);
    }
  });

  it("only aggregates on fields our templates map, and filters by cluster", () => {
    for (const o of objects.filter((x) => x.type === "visualization")) {
      const vis = JSON.parse(o.attributes.visState);
      const index = o.references[0].id;
      const fields = [
        ...vis.aggs.map((a: { params: { field?: string } }) => a.params.field).filter(Boolean),
        ...(vis.params.controls ?? []).map((c: { fieldName: string }) => c.fieldName),
      ];
      for (const f of fields)
        expect(mapped(index === "k8s-audit-events" ? RAW_EVENT_MAPPINGS : (ALERT_MAPPINGS as any), f), `${o.id}: ${f}`).toBe(true);
    }
    const control = JSON.parse(byKey.get("visualization:k8s-audit-cluster-filter").attributes.visState);
    expect(control.params.controls[0].fieldName).toBe("orchestrator.cluster.name");
  });
});

describe("Kibana Security promotion rule", () => {
  const rule = JSON.parse(readFileSync(PROMOTION_RULE_FILE, "utf8"));
  it("promotes our alert data streams with each alert's rule name, severity and risk score", () => {
    expect(rule.index).toEqual(["logs-k8s_audit.alert-*"]);
    expect(rule.rule_name_override).toBe("rule.name");
    expect(rule.severity_mapping.map((m: { value: string; severity: string }) => [m.value, m.severity])).toEqual([
      ["21", "low"],
      ["47", "medium"],
      ["73", "high"],
      ["99", "critical"],
    ]);
    expect(rule.risk_score_mapping[0].field).toBe("event.risk_score");
    expect(rule.timestamp_override).toBe("event.ingested");
  });
});
