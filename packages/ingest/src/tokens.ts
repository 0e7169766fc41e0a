import { createHash, timingSafeEqual } from "node:crypto";
import { readFileSync } from "node:fs";

/**
 * Bearer tokens accepted by the webhook, one per line in a file (several at once, for rotation). Tokens are kept only as
 * SHA-256 digests and compared in constant time, so neither timing nor a heap dump reveals them.
 */
export class TokenSet {
  private digests: Buffer[] = [];

  constructor(tokens: string[] = []) {
    this.set(tokens);
  }

  static fromFile(path: string): TokenSet {
    return new TokenSet().load(path);
  }

  /** Replaces the tokens with the file's; a failed read throws and keeps the previous ones. */
  load(path: string): this {
    this.set(parseTokenFile(readFileSync(path, "utf8")));
    return this;
  }

  set(tokens: string[]): void {
    this.digests = tokens.map(digest);
  }

  get size(): number {
    return this.digests.length;
  }

  /** True when the Authorization header carries one of the tokens. Every stored digest is compared, match or not. */
  verifyAuthorization(header: string | undefined): boolean {
    if (!header?.startsWith("Bearer ")) return false;
    const presented = digest(header.slice(7).trim());
    let ok = false;
    for (const d of this.digests) ok = timingSafeEqual(d, presented) || ok;
    return ok;
  }
}

function digest(token: string): Buffer {
  return createHash("sha256").update(token).digest();
}

export function parseTokenFile(text: string): string[] {
  return text
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l !== "" && !l.startsWith("#"));
}
