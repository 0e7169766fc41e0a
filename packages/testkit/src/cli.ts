import { type ChildProcess, spawn } from "node:child_process";

/** The `k8s-audit` executable, run as users run it (its bin script, not the cli package's sources). */
export const CLI = new URL("../../cli/bin/k8s-audit.mjs", import.meta.url).pathname;

export interface CliProcess {
  proc: ChildProcess;
  /** The webhook URL the process printed. */
  url: string;
  stdout(): string;
  stderr(): string;
  exited: Promise<number | null>;
}

/** Runs `k8s-audit <args>` as a user would and resolves once it prints the address its webhook listens on. */
export async function startCli(args: string[], env: NodeJS.ProcessEnv): Promise<CliProcess> {
  const proc = spawn(process.execPath, [CLI, ...args], { env, stdio: ["ignore", "pipe", "pipe"] });
  const exited = new Promise<number | null>((r) => proc.once("exit", (code) => r(code)));
  let stdout = "";
  let stderr = "";
  proc.stdout?.on("data", (d) => {
    stdout += d;
  });
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`k8s-audit ${args[0]} printed no listening line; stderr: ${stderr}`)), 30_000);
    proc.stderr?.on("data", (d) => {
      stderr += d;
      const m = /webhook listening on (https?:\/\/\S+\/audit)/.exec(stderr);
      if (m?.[1]) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    });
  });
  return { proc, url, stdout: () => stdout, stderr: () => stderr, exited };
}
