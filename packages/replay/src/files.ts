import { closeSync, createReadStream, existsSync, openSync, readSync, statSync } from "node:fs";
import { basename } from "node:path";
import type { Readable } from "node:stream";
import { StringDecoder } from "node:string_decoder";
import { createGunzip } from "node:zlib";
import fg from "fast-glob";

export interface InputFile {
  path: string;
  bytes: number;
  /** The log the file belongs to: a live file and its rotated backups share one (their folder and live name). */
  log: string;
}

/** `<name>-YYYY-MM-DDTHH-MM-SS.mmm.log[.gz]`: a rotated backup written by --audit-log-path. */
const ROTATED = /^(.*)-(\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}\.\d{3})\.log(\.gz)?$/;

/**
 * Expands files, folders and globs into the files to read, in replay order: for each log, its rotated backups oldest
 * first, then the live file; other files by name.
 */
export async function resolveInputs(inputs: string[]): Promise<InputFile[]> {
  const found = new Set<string>();
  for (const input of inputs) {
    if (existsSync(input) && statSync(input).isDirectory()) {
      for (const f of await fg("**/*", { cwd: input, absolute: true, onlyFiles: true, dot: false })) found.add(f);
    } else if (existsSync(input)) found.add(input);
    else {
      const matches = await fg(input, { absolute: true, onlyFiles: true });
      if (matches.length === 0) throw new Error(`no such file, folder or glob match: ${input}`);
      for (const f of matches) found.add(f);
    }
  }
  const sortKey = (path: string): string => {
    const { log, place } = logPlace(path);
    return `${log}\u0000${place}`;
  };
  return [...found]
    .sort((a, b) => (sortKey(a) < sortKey(b) ? -1 : sortKey(a) > sortKey(b) ? 1 : 0))
    .map((path) => ({ path, bytes: statSync(path).size, log: logPlace(path).log }));
}

/**
 * Which log a file belongs to and its place in it: a rotated backup goes by its timestamp, before the live file of the
 * same log ("~" sorts after digits); any other file is a log of its own.
 */
function logPlace(path: string): { log: string; place: string } {
  const name = basename(path);
  const folder = path.slice(0, path.length - name.length);
  const rotated = ROTATED.exec(name);
  if (rotated) return { log: `${folder}${rotated[1]}.log`, place: rotated[2] as string };
  return { log: `${folder}${name.replace(/\.gz$/, "")}`, place: "~" };
}

/**
 * The files as logs, each a run of files read one after another as one stream (in resolveInputs' order): rotation
 * cuts one writer's stream into files that follow each other in time, so they need no merging among themselves, and
 * only one of them is open at a time.
 */
export function groupByLog(files: InputFile[]): InputFile[][] {
  const logs = new Map<string, InputFile[]>();
  for (const file of files) {
    const log = logs.get(file.log);
    if (log) log.push(file);
    else logs.set(file.log, [file]);
  }
  return [...logs.values()];
}

/** The file's content as a stream, gunzipped when it is gzip (by magic number, not by name). */
export function openInput(path: string, onBytes: (n: number) => void): Readable {
  const raw = createReadStream(path);
  raw.on("data", (chunk) => onBytes(chunk.length));
  return isGzip(path) ? raw.pipe(createGunzip()) : raw;
}

function isGzip(path: string): boolean {
  const fd = openSync(path, "r");
  try {
    const head = Buffer.alloc(2);
    readSync(fd, head, 0, 2, 0);
    return head[0] === 0x1f && head[1] === 0x8b;
  } finally {
    closeSync(fd);
  }
}

/**
 * Lines of any length, streamed, a chunk's worth at a time: one await per chunk rather than per line (readline's
 * per-line promises and regex split were a fifth of a replay's time). Splits on \n and drops a \r before it.
 */
export async function* lineBatches(stream: Readable): AsyncIterable<string[]> {
  const decoder = new StringDecoder("utf8");
  let rest = "";
  for await (const chunk of stream) {
    const text = rest + (typeof chunk === "string" ? chunk : decoder.write(chunk as Buffer));
    const batch: string[] = [];
    let from = 0;
    for (let nl = text.indexOf("\n"); nl !== -1; nl = text.indexOf("\n", from)) {
      batch.push(text.charCodeAt(nl - 1) === 13 ? text.slice(from, nl - 1) : text.slice(from, nl));
      from = nl + 1;
    }
    rest = text.slice(from);
    if (batch.length) yield batch;
  }
  rest += decoder.end();
  if (rest.length) yield [rest.endsWith("\r") ? rest.slice(0, -1) : rest];
}
