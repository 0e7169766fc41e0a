import { readFileSync, statSync } from "node:fs";
import type { SecureContextOptions } from "node:tls";

export interface TlsFiles {
  cert: string;
  key: string;
  /** Client-CA bundle: when set, clients are asked for a certificate (mTLS). */
  clientCa?: string;
}

export function readTlsFiles(files: TlsFiles): SecureContextOptions {
  return {
    cert: readFileSync(files.cert),
    key: readFileSync(files.key),
    ...(files.clientCa ? { ca: readFileSync(files.clientCa) } : {}),
  };
}

/**
 * Calls `onChange` when any of the files changes (content, replacement or deletion). Polling, not inotify: Kubernetes
 * mounts secrets through a symlink that is swapped atomically, which inotify watches on the old target miss. Each
 * file's state is taken when the watch starts, so a change right after start (even before the first poll) is seen —
 * fs.watchFile would take its baseline at its first poll and miss a file deleted before it.
 */
export function watchFiles(paths: string[], onChange: () => void, intervalMs = 2000): () => void {
  const last = new Map(paths.map((p) => [p, fileState(p)]));
  const timer = setInterval(() => {
    let changed = false;
    for (const p of paths) {
      const now = fileState(p);
      if (now !== last.get(p)) {
        last.set(p, now);
        changed = true;
      }
    }
    if (changed) onChange();
  }, intervalMs);
  timer.unref();
  return () => clearInterval(timer);
}

/** What a change is: another inode (a swapped symlink target), another mtime or size, or the file gone. */
function fileState(path: string): string {
  try {
    const s = statSync(path);
    return `${s.ino}:${s.mtimeMs}:${s.size}`;
  } catch {
    return "missing";
  }
}
