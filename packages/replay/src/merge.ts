import { MinHeap } from "./heap.js";
import { compareEntries, type Entry } from "./order.js";
import { ReorderBuffer } from "./reorder.js";

/**
 * One input seen through its reorder buffer: `head` is the earliest event it has not handed on yet. Moving to the
 * next event awaits only when the batch read last is used up, so there is one await per batch, not per event.
 */
export class InputCursor {
  head: Entry | undefined;
  readonly buffer: ReorderBuffer;
  private batch: Entry[] = [];
  private index = 0;
  private ended = false;
  /** The two events read last (in reading order), to find one far ahead of both its neighbours. */
  private beforeLast: Entry | undefined;
  private lastRead: Entry | undefined;

  constructor(
    private readonly batches: AsyncIterator<Entry[]>,
    reorderBuffer: number,
    private readonly outliers?: { aheadMicros: number; found: (entry: Entry) => void },
  ) {
    this.buffer = new ReorderBuffer(reorderBuffer);
  }

  /**
   * An event stamped further ahead than the allowed skew of both the event before it and the event after it, in the
   * order the log was written, is a clock gone wrong: reported. (The merge never obeys it: sorted by its time, it is
   * handed on only when the archive's own time reaches it, or at the end.)
   */
  private watchOrder(entry: Entry): void {
    const middle = this.lastRead;
    if (this.outliers && middle && this.beforeLast) {
      const around = Math.max(this.beforeLast.micros, entry.micros);
      if (middle.micros - around > this.outliers.aheadMicros) this.outliers.found(middle);
    }
    this.beforeLast = middle;
    this.lastRead = entry;
  }

  /** Moves `head` to the next event if that needs no reading (true); false when a batch must be read first. */
  tryAdvance(): boolean {
    while (this.index < this.batch.length) {
      const entry = this.batch[this.index++] as Entry;
      this.watchOrder(entry);
      const released = this.buffer.offer(entry);
      if (released) {
        this.head = released;
        return true;
      }
    }
    if (!this.ended) return false;
    // The input has ended: what the buffer holds comes out smallest first, then `head` is undefined.
    this.head = this.buffer.takeSmallest();
    return true;
  }

  async advance(): Promise<void> {
    while (!this.tryAdvance()) {
      const next = await this.batches.next();
      if (next.done) this.ended = true;
      else {
        this.batch = next.value;
        this.index = 0;
      }
    }
  }

  /** Stops reading early (the replay failed): closes the input's file. */
  async close(): Promise<void> {
    if (!this.ended) await this.batches.return?.();
    this.ended = true;
  }
}

/** Hands an event on; returns a promise only when it must be awaited (a promise per event would cost too much). */
export type EmitEntry = (entry: Entry) => Promise<void> | undefined;

/**
 * A k-way merge: always hands on the earliest head among the inputs, so the output is in time order as long as each
 * input's own disorder fits in its reorder buffer. The inputs sit in a heap by head; with one input that heap never
 * compares anything, and the single input's events go straight through.
 */
export async function mergeByTime(cursors: InputCursor[], emit: EmitEntry): Promise<void> {
  const byHead = new MinHeap<InputCursor>((a, b) => compareEntries(a.head as Entry, b.head as Entry));
  for (const cursor of cursors) {
    await cursor.advance();
    if (cursor.head) byHead.push(cursor);
  }
  for (let cursor = byHead.peek(); cursor; cursor = byHead.peek()) {
    const pending = emit(cursor.head as Entry);
    if (pending) await pending;
    if (!cursor.tryAdvance()) await cursor.advance();
    if (cursor.head) byHead.updateTop();
    else byHead.pop();
  }
}
