import { readFileSync, unwatchFile, watchFile } from "node:fs";
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
 * Calls `onChange` when any of the files changes. Polling (fs.watchFile), not inotify: Kubernetes mounts secrets through
 * a symlink that is swapped atomically, which inotify watches on the old target miss.
 */
export function watchFiles(paths: string[], onChange: () => void, intervalMs = 2000): () => void {
  const listener = (curr: { mtimeMs: number; ino: number }, prev: { mtimeMs: number; ino: number }) => {
    if (curr.mtimeMs !== prev.mtimeMs || curr.ino !== prev.ino) onChange();
  };
  for (const p of paths) watchFile(p, { interval: intervalMs, persistent: false }, listener);
  return () => {
    for (const p of paths) unwatchFile(p, listener);
  };
}
