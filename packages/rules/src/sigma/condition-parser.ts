/**
 * Sigma's condition expressions: identifiers (with * wildcards), `and`, `or`, `not`, parentheses, and the
 * quantifiers `1 of <pattern>`, `all of <pattern>`, `1 of them`, `all of them`. Precedence: not > and > or.
 */
export type SigmaExpr =
  | { kind: "ref"; name: string }
  | { kind: "and" | "or"; parts: SigmaExpr[] }
  | { kind: "not"; inner: SigmaExpr }
  | { kind: "quantified"; quantifier: "any" | "all"; pattern: string };

export function parseSigmaCondition(text: string): SigmaExpr {
  const tokens = text.match(/\(|\)|[^\s()]+/g) ?? [];
  let pos = 0;
  const peek = () => tokens[pos]?.toLowerCase();
  const take = () => tokens[pos++] as string;

  const parseOr = (): SigmaExpr => {
    const parts = [parseAnd()];
    while (peek() === "or") {
      take();
      parts.push(parseAnd());
    }
    return parts.length === 1 ? (parts[0] as SigmaExpr) : { kind: "or", parts };
  };
  const parseAnd = (): SigmaExpr => {
    const parts = [parseNot()];
    while (peek() === "and") {
      take();
      parts.push(parseNot());
    }
    return parts.length === 1 ? (parts[0] as SigmaExpr) : { kind: "and", parts };
  };
  const parseNot = (): SigmaExpr => {
    if (peek() === "not") {
      take();
      return { kind: "not", inner: parseNot() };
    }
    return parseAtom();
  };
  const parseAtom = (): SigmaExpr => {
    const token = peek();
    if (token === undefined) throw new Error(`condition "${text}" ends too early`);
    if (token === "(") {
      take();
      const inner = parseOr();
      if (peek() !== ")") throw new Error(`condition "${text}": missing )`);
      take();
      return inner;
    }
    if (token === "1" || token === "all" || token === "any") {
      take();
      if (peek() !== "of") throw new Error(`condition "${text}": expected "of" after "${token}"`);
      take();
      const pattern = take();
      if (pattern === undefined) throw new Error(`condition "${text}": "of" needs a name pattern or "them"`);
      return { kind: "quantified", quantifier: token === "all" ? "all" : "any", pattern };
    }
    if (token === ")" || token === "and" || token === "or") throw new Error(`condition "${text}": unexpected "${token}"`);
    return { kind: "ref", name: take() };
  };

  const expr = parseOr();
  if (pos < tokens.length) throw new Error(`condition "${text}": unexpected "${tokens[pos]}"`);
  return expr;
}
