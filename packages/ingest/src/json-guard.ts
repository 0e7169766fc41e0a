/**
 * JSON.parse with a depth guard that never recurses. The apiserver records patch bodies as sent, and it accepts bodies
 * nested thousands deep; V8 parses those, but JSON.stringify and every recursive walker downstream (schema checks,
 * redaction, rules) would throw RangeError on them. So before parsing, one iterative scan of the text finds every value
 * nested deeper than `maxDepth` below its event and replaces it with a marker: the rest of the event, and every other
 * event of the batch, is kept.
 */

/** What replaced a value nested too deep: `depth` is how deep the removed value itself went. */
export interface DepthMarker {
  truncated: true;
  reason: "depth";
  depth: number;
}

export interface DepthCut {
  /** Index of the item in the batch (0 for a single event). */
  item: number;
  /** The event's top-level field the cut is in (e.g. requestObject); "" when the item itself is not an object. */
  field: string;
  /** Nesting depth of the removed value. */
  depth: number;
}

export interface GuardedJson {
  value: unknown;
  cuts: DepthCut[];
}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const OPEN_BRACE = 0x7b;
const CLOSE_BRACE = 0x7d;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACKET = 0x5d;
const COMMA = 0x2c;
const COLON = 0x3a;
/** Keys longer than this are never an envelope key or a field name we report. */
const MAX_KEY_CHARS = 64;

/**
 * Parses `text` (throws SyntaxError like JSON.parse on malformed input). Depth is counted from the event: in an
 * EventList `{"items":[event,…]}` or an array `[event,…]` each item is an event; any other object is one event. A value
 * of an event that opens its (maxDepth+1)th nested level is replaced by a DepthMarker.
 */
export function parseJsonGuarded(text: string, maxDepth: number): GuardedJson {
  const cuts = new DepthScanner(text, maxDepth).scan();
  if (cuts.length === 0) return { value: JSON.parse(text), cuts: [] };
  const parts: string[] = [];
  let from = 0;
  for (const cut of cuts) {
    parts.push(text.slice(from, cut.start), JSON.stringify(depthMarker(cut.depth)));
    from = cut.end;
  }
  parts.push(text.slice(from));
  return { value: JSON.parse(parts.join("")), cuts: cuts.map(({ item, field, depth }) => ({ item, field, depth })) };
}

/** A value to cut out of the text: [start, end) and what the caller is told about it. */
type PendingCut = DepthCut & { start: number; end: number };

/**
 * One pass over the text's structural characters (strings are skipped whole with indexOf), tracking where each event
 * starts, its current top-level field, and the value being cut. One scanner per body; its state lives in fields so each
 * kind of character has its own small method.
 */
class DepthScanner {
  private readonly cuts: PendingCut[] = [];
  private depth = 0;
  private rootIsArray = false;
  /** Inside the root object's "items" array (an EventList). */
  private inItems = false;
  private item = 0;
  private lastString = "";
  private rootKey = "";
  private field = "";
  private cutStart = -1;
  private cutAt = 0;
  private cutDeepest = 0;

  constructor(
    private readonly text: string,
    private readonly maxDepth: number,
  ) {}

  /** The cuts to make, in text order. Stops early on malformed text: JSON.parse then reports it. */
  scan(): PendingCut[] {
    const text = this.text;
    const n = text.length;
    for (let i = 0; i < n; i++) {
      switch (text.charCodeAt(i)) {
        case QUOTE:
          i = this.string(i);
          if (i < 0) return this.cuts; // unterminated
          break;
        case OPEN_BRACE:
          this.open(i, false);
          break;
        case OPEN_BRACKET:
          this.open(i, true);
          break;
        case CLOSE_BRACE:
        case CLOSE_BRACKET:
          if (!this.close(i)) return this.cuts; // unbalanced
          break;
        case COMMA:
          this.comma();
          break;
        case COLON:
          this.colon();
          break;
      }
    }
    return this.cuts;
  }

  private eventDepth(): number {
    return this.rootIsArray ? 2 : this.inItems ? 3 : 1;
  }

  /** A string opening at `i`, kept when it may be a key we need; returns its closing quote's index, -1 when none. */
  private string(i: number): number {
    const j = closingQuote(this.text, i);
    if (j >= 0 && this.cutStart < 0 && (this.depth === 1 || this.depth === this.eventDepth()))
      this.lastString = j - i - 1 <= MAX_KEY_CHARS ? this.text.slice(i + 1, j) : "";
    return j;
  }

  private open(i: number, bracket: boolean): void {
    const depth = ++this.depth;
    if (depth === 1) {
      this.rootIsArray = bracket;
      return;
    }
    if (this.cutStart >= 0) {
      if (depth > this.cutDeepest) this.cutDeepest = depth;
      return;
    }
    if (depth === 2 && !this.rootIsArray && this.rootKey === "items" && bracket) {
      this.inItems = true;
      this.item = 0;
      return;
    }
    const eventDepth = this.eventDepth();
    if (depth === eventDepth) this.field = "";
    if (depth - eventDepth > this.maxDepth) {
      this.cutStart = i;
      this.cutAt = depth;
      this.cutDeepest = depth;
    }
  }

  /** False when this closes more than was opened. */
  private close(i: number): boolean {
    if (this.depth <= 0) return false;
    if (this.cutStart >= 0 && this.depth === this.cutAt) {
      this.cuts.push({ start: this.cutStart, end: i + 1, item: this.item, field: this.field, depth: this.cutDeepest - this.cutAt + 1 });
      this.cutStart = -1;
    } else if (this.cutStart < 0 && this.inItems && this.depth === 2) {
      this.inItems = false;
    }
    this.depth--;
    return true;
  }

  private comma(): void {
    if (this.cutStart < 0 && this.depth === this.eventDepth() - 1 && (this.rootIsArray || this.inItems)) this.item++;
  }

  private colon(): void {
    if (this.cutStart >= 0) return;
    if (this.depth === 1) this.rootKey = this.lastString;
    if (this.depth === this.eventDepth()) this.field = this.lastString;
  }
}

/** The index of the quote closing the string opened at `open` (the first not escaped by a backslash), or -1. */
function closingQuote(text: string, open: number): number {
  let j = open;
  for (;;) {
    j = text.indexOf('"', j + 1);
    if (j < 0) return -1;
    let k = j - 1;
    while (text.charCodeAt(k) === BACKSLASH) k--;
    if ((j - 1 - k) % 2 === 0) return j;
  }
}

export function depthMarker(depth: number): DepthMarker {
  return { truncated: true, reason: "depth", depth };
}
