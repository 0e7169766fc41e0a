/**
 * Errors that callers branch on, Fastify style: one class per case, each with a stable `code` (K8S_AUDIT_…) to match in
 * code and in logs, and — for an error that decides an HTTP answer — the `statusCode` to answer with. Branch with
 * `instanceof` or `code`, never on the message: messages are for people and change.
 */
export class K8sAuditError extends Error {
  readonly code: string;
  /** The HTTP status this error should be answered with, when it is raised while serving a request. */
  readonly statusCode?: number;

  constructor(message: string, options: { code: string; statusCode?: number; cause?: unknown }) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = options.code;
    if (options.statusCode !== undefined) this.statusCode = options.statusCode;
  }
}

/**
 * An audit webhook answered with something other than 2xx. `status` is the webhook's answer, not one of ours to send
 * (hence not `statusCode`).
 */
export class WebhookRejectedError extends K8sAuditError {
  constructor(
    readonly url: string,
    readonly status: number,
  ) {
    super(`webhook answered ${status}`, { code: "K8S_AUDIT_WEBHOOK_REJECTED" });
  }

  /** Worth sending again: 429 and 5xx (overload, an outage), as the kube-apiserver's webhook backend retries. */
  get retryable(): boolean {
    return this.status === 429 || this.status >= 500;
  }
}

/**
 * The HTTP status an error asks to be answered with: ours say so by class (K8sAuditError.statusCode), Fastify's own
 * errors (and the stream errors it tags) carry `statusCode`. Undefined when the error names none.
 */
export function httpStatusOf(err: unknown): number | undefined {
  if (err instanceof K8sAuditError) return err.statusCode;
  if (err instanceof Error && "statusCode" in err && typeof err.statusCode === "number") return err.statusCode;
  return undefined;
}
