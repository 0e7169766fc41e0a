import { K8sAuditError } from "@k8s-audit/core";
import { RE2JS, RE2JSException } from "re2js";

/**
 * String matchers for patterns that come from rule data (the `regex` and `glob` operators, Sigma `|re` and wildcards).
 * Rules are user data and every event is attacker-shaped, so no pattern may backtrack: regexes run on RE2 (re2js,
 * linear in the input), globs on plain string searches. See docs/rules-regex.md.
 */

/**
 * Longest string a regex reads whole. RE2 is linear, so this only bounds the work per value (~1 MiB is a few ms); it
 * sits above the ingest's whole-event cap (K8S_AUDIT_MAX_EVENT_BYTES, 900 KiB), so a value that went through the
 * ingest is never cut. A longer one (replay of an archive, a raised event cap) is matched on its first and its last
 * half-cap: a payload padded at either end is still seen, and `^`/`$` keep meaning the value's start and end.
 */
export const REGEX_INPUT_CAP = 1024 * 1024;
const HALF_CAP = REGEX_INPUT_CAP / 2;

/** Thrown at load time for a pattern RE2 cannot run (lookaround, backreferences, ...); the loaders add file and rule. */
export class RegexSyntaxError extends K8sAuditError {
  constructor(pattern: string, reason: string) {
    super(
      `regex ${JSON.stringify(pattern)} is not RE2 syntax (${reason}); rule regexes run in linear time, so lookaround and backreferences cannot be used`,
      { code: "K8S_AUDIT_REGEX_NOT_RE2" },
    );
  }
}

/**
 * JavaScript spellings RE2 does not read, rewritten to RE2's: `\uXXXX` and `\u{X…}` become `\x{…}`. Everything
 * else is RE2 syntax as written (docs/rules-regex.md lists where it differs from JavaScript).
 */
function toRe2Syntax(pattern: string): string {
  if (!pattern.includes("\\u")) return pattern;
  let out = "";
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i];
    if (c !== "\\") {
      out += c;
      continue;
    }
    const rest = pattern.slice(i + 1);
    const braced = /^u\{([0-9a-fA-F]{1,6})\}/.exec(rest);
    const plain = /^u([0-9a-fA-F]{4})/.exec(rest);
    const m = braced ?? plain;
    if (m) {
      out += `\\x{${m[1]}}`;
      i += m[0].length;
    } else {
      // Any other escape (including `\\`) is copied with its escaped character, so `\\u0041` stays a literal.
      out += c + (pattern[i + 1] ?? "");
      i++;
    }
  }
  return out;
}

/** Compiles a rule regex (unanchored, like RegExp.test) on RE2; throws RegexSyntaxError when RE2 cannot express it. */
export function compileRegex(pattern: string, ignoreCase = false): (value: string) => boolean {
  let re: RE2JS;
  try {
    re = RE2JS.compile(toRe2Syntax(pattern), ignoreCase ? RE2JS.CASE_INSENSITIVE : 0);
  } catch (err) {
    if (err instanceof RE2JSException) throw new RegexSyntaxError(pattern, err.message.replace(/^error parsing regexp: /, ""));
    throw err;
  }
  return (value) =>
    value.length <= REGEX_INPUT_CAP ? re.test(value) : re.test(value.slice(0, HALF_CAP)) || re.test(value.slice(-HALF_CAP));
}

const RE2_SPECIAL = /[\\.+*?()|[\]{}^$]/g;

/**
 * Compiles a glob (`*` any run of characters, `?` one character, the whole value must match). Globs without `?` are
 * matched with startsWith/indexOf/endsWith: a leftmost search for each `*`-separated piece is exact and never
 * backtracks. Globs with `?` become an anchored RE2 regex.
 */
export function compileGlob(glob: string, ignoreCase = false): (value: string) => boolean {
  if (glob.includes("?")) {
    const body = glob.replace(RE2_SPECIAL, (ch) => (ch === "*" ? "(?s:.*)" : ch === "?" ? "(?s:.)" : `\\${ch}`));
    return compileRegex(`^${body}$`, ignoreCase);
  }
  const fold = ignoreCase ? (s: string) => s.toLowerCase() : (s: string) => s;
  const pieces = fold(glob).split("*");
  if (pieces.length === 1) {
    const want = pieces[0] as string;
    return (value) => fold(value) === want;
  }
  const head = pieces[0] as string;
  const tail = pieces[pieces.length - 1] as string;
  const middle = pieces.slice(1, -1).filter((p) => p !== "");
  const minLength = head.length + tail.length;
  return (raw) => {
    const value = fold(raw);
    if (value.length < minLength || !value.startsWith(head) || !value.endsWith(tail)) return false;
    // Each middle piece at its leftmost place after the previous one, all before the tail.
    const end = value.length - tail.length;
    let at = head.length;
    for (const piece of middle) {
      const found = value.indexOf(piece, at);
      if (found < 0 || found + piece.length > end) return false;
      at = found + piece.length;
    }
    return true;
  };
}
