import type { ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startCli } from "@k8s-audit/testkit";
import { afterAll, describe, expect, it } from "vitest";

const EXAMPLE = new URL("../../packages/cli/examples/cluster-admin-binding.json", import.meta.url).pathname;

/** The README's first command and curl example: `k8s-audit start` on the embedded default, as a user runs it. */
describe("k8s-audit start (embedded default)", () => {
  let child: ChildProcess | undefined;
  afterAll(() => {
    child?.kill("SIGTERM");
  });

  it("listens on localhost, prints the alert for the README example on stdout and appends it to the NDJSON file", async () => {
    const dir = mkdtempSync(join(tmpdir(), "k8s-audit-start-"));
    const alertsFile = join(dir, "alerts.ndjson");
    const env: NodeJS.ProcessEnv = { ...process.env, K8S_AUDIT_ALERTS_FILE: alertsFile, LOG_LEVEL: "warn" };
    delete env.KAFKA_BROKERS;
    delete env.ELASTICSEARCH_URL;
    const cli = await startCli(["start", "--listen", "127.0.0.1:0"], env);
    const { proc, url } = cli;
    child = proc;
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/audit$/);
    expect(cli.stderr()).toContain("bus: in-memory");

    const res = await fetch(`${url}/demo`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: readFileSync(EXAMPLE),
    });
    expect(await res.json()).toEqual({ accepted: 1, rejected: 0, deduplicated: 0, truncated: 0, storedIn: "bus" });
    for (let i = 0; i < 50 && !cli.stdout().includes("rbac.binding_to_cluster_admin"); i++) await new Promise((r) => setTimeout(r, 100));

    // stdout is not a TTY here, so alerts come as one JSON document per line
    const lines = cli
      .stdout()
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l));
    const alert = lines.find((a) => a.rule.id === "rbac.binding_to_cluster_admin");
    expect(alert.message).toBe("Binding to cluster-admin created: mallory create clusterrolebindings pwned");
    expect(alert.orchestrator.cluster.name).toBe("demo");
    expect(alert.kubernetes.audit.auditID).toEqual(["7f1c2a9e-5b7d-4f7e-9d55-3c1f0f6d2a11"]);
    expect(
      readFileSync(alertsFile, "utf8")
        .trim()
        .split("\n")
        .map((l) => JSON.parse(l).event.id),
    ).toEqual(lines.map((a) => a.event.id));

    // One /metrics for the whole embedded pipeline: the ingest's and the detector's, window engine included.
    const metrics = await (await fetch(url?.replace("/audit", "/metrics") as string)).text();
    expect(metrics).toMatch(/^k8s_audit_ingest_events_accepted_total 1$/m);
    expect(metrics).toMatch(/^k8s_audit_detector_events_total 1$/m);
    expect(metrics).toMatch(/^k8s_audit_detector_alerts_total\{rule="rbac.binding_to_cluster_admin"\} 1$/m);
    expect(metrics).toMatch(/^k8s_audit_window_open_keys \d+$/m);
    expect(metrics).toMatch(/^k8s_audit_window_evicted_keys_total 0$/m);

    proc.kill("SIGTERM");
    const code = await cli.exited;
    expect(code).toBe(0);
  });
});
