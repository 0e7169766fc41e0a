import { type SpawnSyncOptions, spawnSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync, realpathSync, rmSync } from "node:fs";
import { createConnection } from "node:net";
import { dirname, join } from "node:path";

export class EngineError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "EngineError";
  }
}

export function run(cmd: string, args: string[], options: SpawnSyncOptions = {}): { status: number; output: string } {
  const r = spawnSync(cmd, args, { encoding: "utf8", ...options });
  if (r.error) return { status: 127, output: String(r.error.message) };
  return { status: r.status ?? 1, output: `${r.stdout ?? ""}${r.stderr ?? ""}` };
}

export function which(cmd: string): string | undefined {
  const r = run("sh", ["-c", `command -v ${cmd}`]);
  return r.status === 0 ? r.output.trim() : undefined;
}

/** True when something accepts TCP connections on 127.0.0.1:port. */
export function portOpen(port: number, host = "127.0.0.1", timeoutMs = 500): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ port, host });
    const done = (open: boolean) => {
      socket.destroy();
      resolve(open);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once("connect", () => done(true));
    socket.once("error", () => done(false));
  });
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

export async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs: number, logHint: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await sleep(500);
  }
  throw new EngineError(`${what} did not become ready within ${Math.round(timeoutMs / 1000)} s; see ${logHint}`);
}

export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

export function readPid(file: string): number | undefined {
  if (!existsSync(file)) return undefined;
  const pid = Number(readFileSync(file, "utf8").trim());
  return Number.isInteger(pid) && pid > 0 && pidAlive(pid) ? pid : undefined;
}

/** Pids of processes whose command line contains `marker` (our engine folders), so nothing is left behind. */
export function pidsMatching(marker: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      const cmdline = readFileSync(`/proc/${entry}/cmdline`, "utf8").replaceAll("\0", " ");
      if (cmdline.includes(marker) && /\bjava\b|runuser/.test(cmdline)) pids.push(Number(entry));
    } catch {
      // The process ended while we looked.
    }
  }
  return pids;
}

/** SIGTERM, wait up to graceMs, then SIGKILL. */
export async function terminate(pids: number[], graceMs = 20_000): Promise<void> {
  for (const pid of pids) {
    try {
      process.kill(pid, "SIGTERM");
    } catch {
      // already gone
    }
  }
  const deadline = Date.now() + graceMs;
  while (pids.some(pidAlive) && Date.now() < deadline) await sleep(200);
  for (const pid of pids.filter(pidAlive)) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // already gone
    }
  }
}

export function removeFile(path: string): void {
  rmSync(path, { force: true });
}

function javaMajor(javaHome: string): number | undefined {
  const bin = join(javaHome, "bin", "java");
  if (!existsSync(bin)) return undefined;
  const r = run(bin, ["-version"]);
  const m = /version "(\d+)(?:\.(\d+))?/.exec(r.output);
  if (!m) return undefined;
  const major = Number(m[1]);
  return major === 1 ? Number(m[2]) : major;
}

/**
 * Finds a JDK whose major version lies in [min, max]: the given env variable first, then JAVA_HOME, the JDKs in
 * /usr/lib/jvm, and the java on PATH. Prefers the newest that fits.
 */
export function findJdk(purpose: string, min: number, max: number, envVar?: string): { home: string; major: number } {
  const candidates = new Set<string>();
  for (const v of [envVar ? process.env[envVar] : undefined, process.env.JAVA_HOME]) if (v) candidates.add(v);
  if (existsSync("/usr/lib/jvm")) for (const d of readdirSync("/usr/lib/jvm")) candidates.add(join("/usr/lib/jvm", d));
  const onPath = which("java");
  if (onPath) candidates.add(dirname(dirname(realpathSync(onPath))));
  const found: { home: string; major: number }[] = [];
  for (const home of candidates) {
    const major = javaMajor(home);
    if (major !== undefined && major >= min && major <= max) found.push({ home, major });
  }
  found.sort((a, b) => b.major - a.major);
  const best = found[0];
  if (!best) {
    const range = max === Number.POSITIVE_INFINITY ? `${min} or newer` : `${min}–${max}`;
    throw new EngineError(
      `${purpose} needs a JDK ${range}; none found (looked at ${envVar ? `$${envVar}, ` : ""}$JAVA_HOME, /usr/lib/jvm/*, java on PATH). Install one (e.g. apt-get install openjdk-17-jdk-headless) or set ${envVar ?? "JAVA_HOME"}.`,
    );
  }
  return best;
}
