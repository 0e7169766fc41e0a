import { MinHeap } from "./heap.js";
import { compareEntries, type Entry } from "./order.js";

/**
 * Puts one input's events back in time order, holding at most `capacity` of them: once full, each new event gives
 * back the smallest of those held and itself. A log is written only roughly in time order (concurrent requests finish
 * out of step), so this sorts it exactly as long as no event is more than `capacity` places from where it belongs.
 *
 * Most events arrive in order, so they go to a sorted run (a ring, O(1) in and out) and only those that arrive earlier
 * than one already read go to a heap; the smallest held is the run's head or the heap's top. Same output as one heap,
 * without a heap's log(capacity) comparisons per event on an input that is in order.
 */
export class ReorderBuffer {
  private readonly run: (Entry | undefined)[];
  private runStart = 0;
  private runLength = 0;
  private readonly strays = new MinHeap<Entry>(compareEntries);
  /** The largest entry read so far: anything smaller arrives out of order. */
  private latest: Entry | undefined;
  /** The most entries held at once (never above capacity). */
  peak = 0;
  /** Entries that arrived earlier than one read before them. */
  outOfOrder = 0;

  constructor(readonly capacity: number) {
    this.run = new Array<Entry | undefined>(capacity);
  }

  get size(): number {
    return this.runLength + this.strays.size;
  }

  /** Takes an entry in; when the buffer is full, returns the smallest of those held and this one. */
  offer(entry: Entry): Entry | undefined {
    const inOrder = this.latest === undefined || compareEntries(entry, this.latest) > 0;
    if (inOrder) this.latest = entry;
    else this.outOfOrder++;
    if (this.size < this.capacity) {
      this.hold(entry, inOrder);
      return undefined;
    }
    const smallest = this.peekSmallest();
    if (smallest === undefined || compareEntries(entry, smallest) < 0) return entry;
    this.takeSmallest();
    this.hold(entry, inOrder);
    return smallest;
  }

  /** Removes and returns the smallest entry held (the input has ended: the buffer drains). */
  takeSmallest(): Entry | undefined {
    const head = this.runLength > 0 ? this.run[this.runStart] : undefined;
    const stray = this.strays.peek();
    if (head === undefined || (stray !== undefined && compareEntries(stray, head) < 0)) return this.strays.pop();
    this.run[this.runStart] = undefined;
    this.runStart = this.runStart + 1 === this.capacity ? 0 : this.runStart + 1;
    this.runLength--;
    return head;
  }

  private peekSmallest(): Entry | undefined {
    const head = this.runLength > 0 ? this.run[this.runStart] : undefined;
    const stray = this.strays.peek();
    if (head === undefined || (stray !== undefined && compareEntries(stray, head) < 0)) return stray;
    return head;
  }

  /** An entry larger than every one read before it extends the run, which stays sorted; any other goes to the heap. */
  private hold(entry: Entry, inOrder: boolean): void {
    if (inOrder) {
      const end = this.runStart + this.runLength;
      this.run[end >= this.capacity ? end - this.capacity : end] = entry;
      this.runLength++;
    } else this.strays.push(entry);
    if (this.size > this.peak) this.peak = this.size;
  }
}
