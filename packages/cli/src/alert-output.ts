import { appendFileSync } from "node:fs";
import type { Alert } from "@k8s-audit/core";

const SEVERITY_NAMES: Record<number, string> = { 21: "LOW", 47: "MEDIUM", 73: "HIGH", 99: "CRITICAL" };
const SEVERITY_COLORS: Record<number, string> = { 21: "\u001b[36m", 47: "\u001b[33m", 73: "\u001b[31m", 99: "\u001b[1;31m" };
const RESET = "\u001b[0m";

/** One readable line for a person at a terminal. */
export function formatAlertLine(alert: Alert, color: boolean): string {
  const sev = SEVERITY_NAMES[alert.event.severity] ?? String(alert.event.severity);
  const tag = color ? `${SEVERITY_COLORS[alert.event.severity] ?? ""}${sev.padEnd(8)}${RESET}` : sev.padEnd(8);
  const where = `cluster=${alert.orchestrator.cluster.name}${alert.source?.ip ? ` ip=${alert.source.ip}` : ""}`;
  return `${alert["@timestamp"]} ${tag} ${alert.message}  [${alert.rule.id}] ${where} auditID=${alert.kubernetes.audit.auditID.join(",")}`;
}

/**
 * Where `k8s-audit start` sends alerts: stdout (readable on a TTY, one JSON document per line otherwise) and an
 * NDJSON file that keeps them after the process ends.
 */
export function createAlertOutput(options: { file?: string; stdout?: NodeJS.WriteStream }) {
  const out = options.stdout ?? process.stdout;
  const tty = Boolean(out.isTTY);
  return (alerts: Alert[]) => {
    if (alerts.length === 0) return;
    const json = `${alerts.map((a) => JSON.stringify(a)).join("\n")}\n`;
    if (options.file) appendFileSync(options.file, json);
    out.write(tty ? `${alerts.map((a) => formatAlertLine(a, true)).join("\n")}\n` : json);
  };
}
