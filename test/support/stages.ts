import { type ChildProcess, spawn } from "node:child_process";
import { createWriteStream, type WriteStream } from "node:fs";
import { createServer } from "node:net";
import { join } from "node:path";
import { CLI } from "@k8s-audit/testkit";

/**
 * Pipeline stages as real, separate processes started through the CLI (`k8s-audit ingest|detect|ship`), each with its
 * own log file, that can be killed with SIGKILL and started again with the same settings (same port, spool folder,
 * consumer groups), as an orchestrator restarts a crashed container.
 */
export class StageProcess {
  private proc: ChildProcess | undefined;
  private exited: Promise<void> = Promise.resolve();
  private log: WriteStream | undefined;
  starts = 0;

  constructor(
    readonly name: string,
    private readonly args: string[],
    private readonly env: NodeJS.ProcessEnv,
    private readonly logDir: string,
  ) {}

  get pid(): number | undefined {
    return this.proc?.exitCode === null ? this.proc.pid : undefined;
  }

  /** Starts the process and resolves once it printed its `k8s-audit: …` ready line (its stages are running). */
  async start(timeoutMs = 60_000): Promise<void> {
    this.starts++;
    this.log ??= createWriteStream(join(this.logDir, `${this.name}.log`), { flags: "a" });
    const log = this.log;
    log.write(`\n==== start #${this.starts} at ${new Date().toISOString()}\n`);
    const proc = spawn(process.execPath, [CLI, ...this.args], { env: this.env, stdio: ["ignore", "pipe", "pipe"] });
    this.proc = proc;
    this.exited = new Promise((r) => proc.once("exit", () => r()));
    proc.stdout?.on("data", (d) => log.write(d));
    let stderr = "";
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`${this.name} did not start in ${timeoutMs} ms; stderr tail: ${stderr.slice(-2000)}`)),
        timeoutMs,
      );
      proc.once("exit", (code, signal) => {
        clearTimeout(timer);
        reject(new Error(`${this.name} exited (${code ?? signal}) while starting; stderr tail: ${stderr.slice(-2000)}`));
      });
      proc.stderr?.on("data", (d) => {
        log.write(d);
        if (stderr.length < 200_000) stderr += d;
        if (/^k8s-audit: /m.test(stderr)) {
          clearTimeout(timer);
          resolve();
        }
      });
    });
  }

  /** kill -9: no shutdown hook runs, in-flight requests and unflushed work die with it. */
  async kill(): Promise<void> {
    const proc = this.proc;
    if (!proc || proc.exitCode !== null) return;
    proc.kill("SIGKILL");
    await this.exited;
    this.log?.write(`\n==== SIGKILL at ${new Date().toISOString()}\n`);
  }

  /** A graceful stop (SIGTERM), then SIGKILL after `graceMs`. */
  async stop(graceMs = 15_000): Promise<void> {
    const proc = this.proc;
    if (proc && proc.exitCode === null && proc.signalCode === null) {
      proc.kill("SIGTERM");
      const timer = setTimeout(() => proc.kill("SIGKILL"), graceMs);
      await this.exited;
      clearTimeout(timer);
    }
    await new Promise<void>((r) => (this.log ? this.log.end(r) : r()));
    this.log = undefined;
  }
}

/** A free TCP port on loopback (so a restarted ingest listens where the load generator keeps posting). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const port = (server.address() as { port: number }).port;
      server.close(() => resolve(port));
    });
  });
}
