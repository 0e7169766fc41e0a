import { type AuditEvent, eventTime } from "@k8s-audit/core";

export interface ReplayFilters {
  from?: string;
  to?: string;
  user?: string;
  namespace?: string;
  cluster?: string;
  verb?: string;
  resource?: string;
}

const RELATIVE = /^-(\d+(?:\.\d+)?)(s|m|h|d|w)$/;
const UNIT_MS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 };

/** An ISO time, or a time relative to now like `-2h`, `-30m`, `-7d`. */
export function parseTime(text: string, now = Date.now()): number {
  const rel = RELATIVE.exec(text.trim());
  if (rel) return now - Number(rel[1]) * (UNIT_MS[rel[2] as string] as number);
  const t = Date.parse(text);
  if (Number.isNaN(t)) throw new Error(`not a time: ${JSON.stringify(text)} (use ISO 8601 or a relative time like -2h, -30m, -7d)`);
  return t;
}

/** Compiles the filters into one predicate. User matches the user or the impersonated user; lists are comma-separated. */
export function compileFilters(filters: ReplayFilters, now = Date.now()): (event: AuditEvent) => boolean {
  const from = filters.from ? parseTime(filters.from, now) : undefined;
  const to = filters.to ? parseTime(filters.to, now) : undefined;
  const set = (v?: string) => (v ? new Set(v.split(",").map((x) => x.trim())) : undefined);
  const users = set(filters.user);
  const namespaces = set(filters.namespace);
  const clusters = set(filters.cluster);
  const verbs = set(filters.verb);
  const resources = set(filters.resource);
  return (e) => {
    if (from !== undefined || to !== undefined) {
      const t = Date.parse(eventTime(e));
      if (from !== undefined && t < from) return false;
      if (to !== undefined && t > to) return false;
    }
    if (users && !(users.has(e.user.username ?? "") || users.has(e.impersonatedUser?.username ?? ""))) return false;
    if (namespaces && !namespaces.has(e.objectRef?.namespace ?? "")) return false;
    if (clusters && !clusters.has(e.cluster ?? "")) return false;
    if (verbs && !verbs.has(e.verb)) return false;
    if (resources && !resources.has(e.objectRef?.resource ?? "")) return false;
    return true;
  };
}
