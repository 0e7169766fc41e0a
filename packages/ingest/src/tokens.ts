import { createHash, timingSafeEqual } from "node:crypto";
import { readFileSync } from "node:fs";

/** Any cluster: a token line `<token> *`. */
export const ANY_CLUSTER = "*";
const CLUSTER_NAME = /^[a-zA-Z0-9._-]{1,128}$/;

/**
 * The clusters a credential may write. `clusters` undefined: a legacy token line without clusters, which the server
 * binds to its default cluster (K8S_AUDIT_CLUSTER). The first listed cluster is the credential's home: the one used when
 * a request names none.
 */
export interface TokenBinding {
  clusters?: string[];
}

export interface TokenLine {
  token: string;
  clusters?: string[];
}

/**
 * Bearer tokens accepted by the webhook, one per line in a file (several at once, for rotation), each bound to the
 * clusters it may write: `<token> <cluster>[,<cluster>…]`, `<token> *` for any, a bare `<token>` for the default
 * cluster only. Tokens are kept only as SHA-256 digests and compared in constant time, so neither timing nor a heap
 * dump reveals them.
 */
export class TokenSet {
  private entries: { digest: Buffer; binding: TokenBinding }[] = [];

  constructor(tokens: (string | TokenLine)[] = []) {
    this.set(tokens);
  }

  /** At start: a malformed line is an error (nothing is running yet to keep serving). */
  static fromFile(path: string): TokenSet {
    const set = new TokenSet();
    const errors = set.load(path);
    if (errors.length > 0) throw new Error(`${path}: ${errors.join("; ")}`);
    return set;
  }

  /**
   * Replaces the tokens with the file's valid lines and returns the malformed lines' errors: a typo in one line must not
   * keep a token that the same edit revoked. Throws when the file cannot be read (the caller decides: see server.ts).
   */
  load(path: string): string[] {
    const { lines, errors } = parseTokenFile(readFileSync(path, "utf8"));
    this.set(lines);
    return errors;
  }

  set(tokens: (string | TokenLine)[]): void {
    this.entries = tokens.map((t) => {
      const line = typeof t === "string" ? { token: t } : t;
      return { digest: digest(line.token), binding: line.clusters ? { clusters: line.clusters } : {} };
    });
  }

  get size(): number {
    return this.entries.length;
  }

  /**
   * The binding of the token the Authorization header carries, or undefined. Every stored digest is compared, match or
   * not, so the time taken does not depend on which (if any) token matched.
   */
  verify(header: string | undefined): TokenBinding | undefined {
    if (!header?.startsWith("Bearer ")) return undefined;
    const presented = digest(header.slice(7).trim());
    let found: TokenBinding | undefined;
    for (const e of this.entries) if (timingSafeEqual(e.digest, presented) && !found) found = e.binding;
    return found;
  }

  /** True when the Authorization header carries one of the tokens (whatever its clusters). */
  verifyAuthorization(header: string | undefined): boolean {
    return this.verify(header) !== undefined;
  }
}

function digest(token: string): Buffer {
  return createHash("sha256").update(token).digest();
}

/**
 * Lines `<token> [<cluster>[,<cluster>…] | *]`; blank lines and `#` comments are skipped. Malformed lines are left out
 * and reported by line number (never with the token).
 */
export function parseTokenFile(text: string): { lines: TokenLine[]; errors: string[] } {
  const lines: TokenLine[] = [];
  const errors: string[] = [];
  text.split(/\r?\n/).forEach((raw, index) => {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) return;
    const [token, clusters, ...rest] = line.split(/\s+/);
    if (!token || rest.length > 0) {
      errors.push(`line ${index + 1}: expected "<token> [<cluster>[,<cluster>…] | *]"`);
      return;
    }
    if (clusters === undefined) {
      lines.push({ token });
      return;
    }
    const names = clusters.split(",").filter(Boolean);
    const bad = names.find((c) => c !== ANY_CLUSTER && !CLUSTER_NAME.test(c));
    if (names.length === 0 || bad !== undefined) {
      errors.push(`line ${index + 1}: invalid cluster name ${JSON.stringify(bad ?? clusters)} (allowed: [a-zA-Z0-9._-] or *)`);
      return;
    }
    lines.push({ token, clusters: names });
  });
  return { lines, errors };
}
