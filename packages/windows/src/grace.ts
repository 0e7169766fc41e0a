/**
 * The grace period of every event-time window (the timed rules' windows and the storm folds): a window stays open
 * until the watermark (the stream's newest event time) is this many window lengths past its end, so events arriving
 * out of order by up to that much change nothing; later ones are counted as late and dropped. One window length is
 * what apiserver batching, several ingest replicas and partitioned reads delay an event by in practice
 * (docs/decisions/0004-event-time-and-watermarks.md).
 */
export const GRACE_PERIOD_WINDOWS = 1;

/** Whether the window starting at `start` (of `windowMs`) is closed, its grace period over, at `watermark`. */
export function isClosed(start: number, windowMs: number, watermark: number, graceWindows = GRACE_PERIOD_WINDOWS): boolean {
  return start + (1 + graceWindows) * windowMs <= watermark;
}
