import { type Logger, pino } from "pino";

/**
 * Paths that may carry credentials anywhere we might log an object. Belt and braces: the code never logs request bodies
 * or tokens on purpose; this catches an accident.
 */
export const REDACTED_LOG_PATHS = [
  "authorization",
  "headers.authorization",
  "req.headers.authorization",
  "*.token",
  "*.password",
  "*.apiKey",
  "requestObject",
  "responseObject",
];

export function createLogger(options: { level?: string; name?: string } = {}): Logger {
  return pino(
    {
      name: options.name ?? "k8s-audit",
      level: options.level ?? process.env.LOG_LEVEL ?? "info",
      redact: { paths: REDACTED_LOG_PATHS, censor: "[redacted]" },
      base: undefined,
    },
    // Logs go to stderr so stdout stays the alert stream (k8s-audit start prints alerts there).
    pino.destination(2),
  );
}

export type { Logger };
