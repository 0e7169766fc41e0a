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

  constructor(
    private readonly batches: AsyncIterator<Entry[]>,
    reorderBuffer: number,
  ) {
    this.buffer = new ReorderBuffer(reorderBuffer);
  }

  /** Moves `head` to the next event if that needs no reading (true); false when a batch must be read first. */
  tryAdvance(): boolean {
    while (this.index < this.batch.length) {
      const released = this.buffer.offer(this.batch[this.index++] as Entry);
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
