/** A binary min-heap over an array, ordered by `compare`. */
export class MinHeap<T> {
  private readonly items: T[] = [];

  constructor(private readonly compare: (a: T, b: T) => number) {}

  get size(): number {
    return this.items.length;
  }

  /** The smallest item, without removing it. */
  peek(): T | undefined {
    return this.items[0];
  }

  push(item: T): void {
    const items = this.items;
    let i = items.length;
    items.push(item);
    while (i > 0) {
      const parent = (i - 1) >> 1;
      const above = items[parent] as T;
      if (this.compare(above, item) <= 0) break;
      items[i] = above;
      i = parent;
    }
    items[i] = item;
  }

  /** Removes and returns the smallest item. */
  pop(): T | undefined {
    const items = this.items;
    const top = items[0];
    const last = items.pop();
    if (items.length > 0 && last !== undefined) this.siftDown(last);
    return top;
  }

  /** The smallest item has changed its key (or was replaced by `item`): restores the order from the top. */
  updateTop(item = this.items[0]): void {
    if (item !== undefined && this.items.length > 0) this.siftDown(item);
  }

  /** Places `item` at the top and moves it down to where it belongs. */
  private siftDown(item: T): void {
    const items = this.items;
    const n = items.length;
    let i = 0;
    for (;;) {
      let child = 2 * i + 1;
      if (child >= n) break;
      const right = child + 1;
      if (right < n && this.compare(items[right] as T, items[child] as T) < 0) child = right;
      const below = items[child] as T;
      if (this.compare(item, below) <= 0) break;
      items[i] = below;
      i = child;
    }
    items[i] = item;
  }
}
