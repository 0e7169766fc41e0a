/**
 * How far ahead of the receiving clock an event may be stamped and still drive event time (windows, storms). A later
 * stamp is a broken node clock or a hostile client: the event is still judged by the per-event rules, but it never
 * moves a watermark, so one far-future event cannot close every window and blind the timed rules.
 */
export const DEFAULT_MAX_FUTURE_SKEW_MS = 5 * 60_000;
