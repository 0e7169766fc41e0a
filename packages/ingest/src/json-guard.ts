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
  const cuts: (DepthCut & { start: number; end: number })[] = [];
  const n = text.length;
  let depth = 0;
  let rootIsArray = false;
  /** Inside the root object's "items" array (an EventList). */
  let inItems = false;
  let item = 0;
  let lastString = "";
  let rootKey = "";
  let field = "";
  let cutStart = -1;
  let cutAt = 0;
  let cutDeepest = 0;

  const eventDepth = () => (rootIsArray ? 2 : inItems ? 3 : 1);

  scan: for (let i = 0; i < n; i++) {
    const c = text.charCodeAt(i);
    switch (c) {
      case QUOTE: {
        // Find the closing quote: the first one preceded by an even number of backslashes.
        let j = i;
        for (;;) {
          j = text.indexOf('"', j + 1);
          if (j < 0) break scan; // unterminated: JSON.parse reports it
          let k = j - 1;
          while (text.charCodeAt(k) === BACKSLASH) k--;
          if ((j - 1 - k) % 2 === 0) break;
        }
        if (cutStart < 0 && (depth === 1 || depth === eventDepth())) lastString = j - i - 1 <= MAX_KEY_CHARS ? text.slice(i + 1, j) : "";
        i = j;
        break;
      }
      case OPEN_BRACE:
      case OPEN_BRACKET: {
        depth++;
        if (depth === 1) {
          rootIsArray = c === OPEN_BRACKET;
          break;
        }
        if (cutStart >= 0) {
          if (depth > cutDeepest) cutDeepest = depth;
          break;
        }
        if (depth === 2 && !rootIsArray && rootKey === "items" && c === OPEN_BRACKET) {
          inItems = true;
          item = 0;
          break;
        }
        if (depth === eventDepth()) field = "";
        if (depth - eventDepth() > maxDepth) {
          cutStart = i;
          cutAt = depth;
          cutDeepest = depth;
        }
        break;
      }
      case CLOSE_BRACE:
      case CLOSE_BRACKET: {
        if (depth <= 0) break scan; // unbalanced: JSON.parse reports it
        if (cutStart >= 0 && depth === cutAt) {
          cuts.push({ start: cutStart, end: i + 1, item, field, depth: cutDeepest - cutAt + 1 });
          cutStart = -1;
        } else if (cutStart < 0 && inItems && depth === 2) {
          inItems = false;
        }
        depth--;
        break;
      }
      case COMMA:
        if (cutStart < 0 && depth === eventDepth() - 1 && (rootIsArray || inItems)) item++;
        break;
      case COLON:
        if (cutStart >= 0) break;
        if (depth === 1) rootKey = lastString;
        if (depth === eventDepth()) field = lastString;
        break;
    }
  }

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

export function depthMarker(depth: number): DepthMarker {
  return { truncated: true, reason: "depth", depth };
}
