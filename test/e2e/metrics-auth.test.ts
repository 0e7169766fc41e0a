import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startPipeline } from "@k8s-audit/cli";
import { loadConfig } from "@k8s-audit/core";
import { quietLogger, uniqueTopics } from "@k8s-audit/testkit";
import { afterAll, describe, expect, inject, it } from "vitest";

/** A detector run on its own serves /metrics itself: with a metrics token file, that endpoint wants a token too. */
describe("detector /metrics behind a token", () => {
  const dir = mkdtempSync(join(tmpdir(), "k8s-audit-metrics-"));
  const tokensFile = join(dir, "metrics-tokens");
  const running: { stop(): Promise<void> }[] = [];
  afterAll(async () => {
    for (const p of running) await p.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it("answers 401 without the token, 200 with it, and 401 again once the file is emptied", async () => {
    writeFileSync(tokensFile, "scrape-token-1\n");
    const topics = uniqueTopics("e2e-metrics-auth");
    const detect = await startPipeline({
      config: loadConfig({
        KAFKA_BROKERS: inject("kafkaBrokers"),
        K8S_AUDIT_TOPIC_EVENTS: topics.events,
        K8S_AUDIT_TOPIC_ALERTS: topics.alerts,
        K8S_AUDIT_TOPIC_DEADLETTER: topics.deadLetter,
        K8S_AUDIT_CONSUMER_GROUP_PREFIX: topics.events,
        K8S_AUDIT_METRICS_LISTEN: "127.0.0.1:0",
        K8S_AUDIT_METRICS_TOKEN_FILE: tokensFile,
      }),
      logger: quietLogger,
      stages: { ingest: false, detect: true, ship: false },
    });
    running.push(detect);
    const url = detect.metricsUrl as string;
    expect((await fetch(url)).status).toBe(401);
    expect((await fetch(url, { headers: { authorization: "Bearer wrong" } })).status).toBe(401);
    const ok = await fetch(url, { headers: { authorization: "Bearer scrape-token-1" } });
    expect(ok.status).toBe(200);
    expect(await ok.text()).toContain("k8s_audit_detector_");
    expect((await fetch(url.replace("/metrics", "/healthz"))).status).toBe(200);

    writeFileSync(tokensFile, "");
    let status = 200;
    for (let i = 0; i < 40 && status === 200; i++) {
      await new Promise((r) => setTimeout(r, 250));
      status = (await fetch(url, { headers: { authorization: "Bearer scrape-token-1" } })).status;
    }
    expect(status).toBe(401);
  });
});
