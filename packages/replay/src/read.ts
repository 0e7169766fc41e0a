import { readFileSync } from "node:fs";
import { gunzipSync } from "node:zlib";
import { type AuditEvent, eventTime, looksLikeAuditEvent, redactEvent, whyNotAnAuditEvent } from "@k8s-audit/core";
import { type InputFile, lineBatches, openInput } from "./files.js";
import { decodeRecord } from "./formats.js";
import { type Entry, timeMicros } from "./order.js";

/** What reading needs from the replay: how to take events in, and where to count what it read. */
export interface ReadContext {
  /** Archives rarely say which cluster they come from: events without one are taken as this cluster. */
  defaultCluster?: string;
  accept: (event: AuditEvent) => boolean;
  /**
   * Run the pipeline's one redactor on every record as it is read, before filters, detection and every sink
   * (docs/redaction.md). Off only through the library option `replay({ redact: false })` (benchmarks); the CLI has no switch.
   */
  redact: boolean;
  counts: { eventsRead: number; matched: number; skipped: number };
  malformed: (file: string, line: number, reason: string) => void;
  onBytes: (file: string, n: number) => void;
}

/** Where a record was read. */
interface Place {
  input: number;
  file: string;
  line: number;
}

/** A CloudWatch `CreateExportTask` line: `<ISO timestamp> <the event's JSON>`. */
const EXPORT_TASK_PREFIX = /^\d{4}-\d{2}-\d{2}T[\d:.]+Z \{/;

function withoutExportTimestamp(text: string): string {
  return EXPORT_TASK_PREFIX.test(text) ? text.slice(text.indexOf(" ") + 1) : text;
}

/** A first line that opens a JSON document without closing it: a pretty-printed EventList or Event, read whole. */
const OPENS_DOCUMENT = /^\s*[[{]\s*$/;
const BLANK = /^\s*$/;

/**
 * The entries of one log (its files one after another: rotated backups, then the live file), a chunk's worth per
 * batch. Streams line by line in constant memory; malformed records are counted with file:line and skipped.
 */
export async function* readLog(files: InputFile[], input: number, context: ReadContext): AsyncGenerator<Entry[]> {
  const reader = new LogReader(input, context);
  for (const file of files) yield* reader.read(file);
}

class LogReader {
  /** Position in the log's reading order, across its files. */
  private seq = 0;

  constructor(
    private readonly input: number,
    private readonly context: ReadContext,
  ) {}

  async *read(file: InputFile): AsyncGenerator<Entry[]> {
    const stream = openInput(file.path, (n) => this.context.onBytes(file.path, n));
    const place: Place = { input: this.input, file: file.path, line: 0 };
    let wholeDocument = false;
    try {
      reading: for await (const lines of lineBatches(stream)) {
        const batch: Entry[] = [];
        for (const text of lines) {
          place.line++;
          if (text.length === 0 || BLANK.test(text)) continue;
          let value: unknown;
          try {
            value = JSON.parse(withoutExportTimestamp(text));
          } catch (err) {
            if (place.line === 1 && OPENS_DOCUMENT.test(text)) {
              wholeDocument = true;
              break reading;
            }
            this.context.malformed(file.path, place.line, `malformed JSON: ${describeJsonError(err)}`);
            continue;
          }
          this.seq = decodeInto(value, place, this.seq, this.context, batch);
        }
        if (batch.length > 0) yield batch;
      }
    } finally {
      stream.destroy();
    }
    if (wholeDocument) yield this.readDocument(file.path);
  }

  /** A pretty-printed document spans many lines: it is parsed whole (its events are held in memory anyway). */
  private readDocument(path: string): Entry[] {
    const raw = readFileSync(path);
    const text = (raw[0] === 0x1f && raw[1] === 0x8b ? gunzipSync(raw) : raw).toString("utf8");
    const batch: Entry[] = [];
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch (err) {
      this.context.malformed(path, 1, `malformed JSON document: ${describeJsonError(err)}`);
      return batch;
    }
    this.seq = decodeInto(value, { input: this.input, file: path, line: 1 }, this.seq, this.context, batch);
    return batch;
  }
}

/**
 * One parsed record → the matched audit events it carries, appended to `out` with positions from `seq` on; returns
 * the next position.
 */
function decodeInto(value: unknown, place: Place, seq: number, context: ReadContext, out: Entry[]): number {
  let decoded: ReturnType<typeof decodeRecord>;
  try {
    decoded = decodeRecord(value);
  } catch (err) {
    context.malformed(place.file, place.line, `malformed envelope: ${describeJsonError(err)}`);
    return seq;
  }
  for (const { event, skipped, malformed } of decoded) {
    if (skipped !== undefined) {
      context.counts.skipped++;
      continue;
    }
    if (malformed !== undefined) {
      context.malformed(place.file, place.line, describeJsonError(malformed));
      continue;
    }
    context.counts.eventsRead++;
    // Before anything else sees it: the filters' reports, the detector (so alerts are built from redacted events) and
    // every sink (Kafka, webhook, Elasticsearch, stdout, the alerts file).
    if (context.redact) redactEvent(event);
    // An event needs a time to be put in order: one without a usable one is as malformed as one without an auditID.
    const micros = looksLikeAuditEvent(event) ? timeOf(event) : Number.NaN;
    if (Number.isNaN(micros)) {
      context.malformed(place.file, place.line, `not an audit event: ${whyNotAnAuditEvent(event)}`);
      continue;
    }
    const audit = event as AuditEvent;
    if (audit.cluster === undefined && context.defaultCluster) audit.cluster = context.defaultCluster;
    if (!context.accept(audit)) continue;
    context.counts.matched++;
    out.push({
      micros,
      auditID: audit.auditID,
      stage: audit.stage,
      received: audit.requestReceivedTimestamp ?? "",
      input: place.input,
      seq: seq++,
      file: place.file,
      line: place.line,
      event: audit,
    });
  }
  return seq;
}

function timeOf(event: AuditEvent): number {
  const time: unknown = eventTime(event);
  return typeof time === "string" ? timeMicros(time) : Number.NaN;
}

/**
 * A JSON syntax error without the text V8 quotes from the input (`Unexpected token 'x', "…the record…" is not valid
 * JSON`): a malformed record can hold a secret, and the reason is printed to stderr. Keeps the position.
 */
export function describeJsonError(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  const quote = message.indexOf('"');
  const kept = quote < 0 ? message : `${message.slice(0, quote).replace(/[,\s]+$/, "")} (input not shown)`;
  const position = /at position \d+(?: \(line \d+ column \d+\))?/.exec(message)?.[0];
  return position && !kept.includes(position) ? `${kept} ${position}` : kept;
}
