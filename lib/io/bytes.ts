/**
 * ByteBuffer: the growable byte queue under BufReader, BufWriter and the codecs.
 *
 * Layout: one ArrayBuffer-backed Uint8Array `data`; the live bytes are data[start, end).
 * Reads land in the spare tail (`spare(min)` then `commit(n)`), consumers take from the
 * front (`consume(n)`). Space is reclaimed by moving the live bytes to the front only when
 * the tail is too small, so a steady stream costs no copies beyond the occasional compaction;
 * the array doubles when compaction is not enough, up to the owner's limit.
 *
 * Invariants: 0 ≤ start ≤ end ≤ data.length; an empty buffer has start = end = 0.
 * Must never: shrink below the live bytes, or hand out a view that survives a later
 * `spare()` (views are taken, used and dropped within one poll).
 * Must never import: lib/driver/**, lib/net/**, lib/fs/**, lib/interop/**, lib/executor.ts
 * Must never import: ffi/**, bun:ffi
 */

/**
 * A growable FIFO of bytes.
 *
 * @example
 * ```ts
 * const b = new ByteBuffer(8);
 * b.append(new TextEncoder().encode("hello"));
 * b.consume(2);
 * new TextDecoder().decode(b.view()); // "llo"
 * ```
 */
export class ByteBuffer {
  /** The storage; the live bytes are data[start, end). */
  data: Uint8Array;
  start = 0;
  end = 0;

  constructor(capacity = 8192) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new RangeError(`Invalid buffer capacity ${capacity}: must be an integer ≥ 1`);
    this.data = new Uint8Array(new ArrayBuffer(capacity));
  }

  /** Live bytes. */
  get length(): number {
    return this.end - this.start;
  }

  /** Total storage. */
  get capacity(): number {
    return this.data.length;
  }

  /** The live bytes, as a view valid until the next spare()/append(). */
  view(): Uint8Array {
    return this.data.subarray(this.start, this.end);
  }

  /** The byte at offset `i` from the front (i < length). */
  at(i: number): number {
    return this.data[this.start + i]!;
  }

  /** Drops `n` bytes from the front. */
  consume(n: number): void {
    this.start += n;
    if (this.start >= this.end) {
      this.start = 0;
      this.end = 0;
    }
  }

  /** Copies `n` bytes off the front into a new array. */
  take(n: number): Uint8Array {
    const out = this.data.slice(this.start, this.start + n);
    this.consume(n);
    return out;
  }

  /**
   * A view of at least `min` free bytes after the live ones (compacting, then growing by
   * doubling as needed). Fill it, then `commit(n)`.
   */
  spare(min = 1): Uint8Array {
    if (this.data.length - this.end < min) this.reserve(min);
    return this.data.subarray(this.end);
  }

  /** Marks `n` bytes of the last spare() view as live. */
  commit(n: number): void {
    this.end += n;
  }

  /** Appends a copy of `bytes`. */
  append(bytes: Uint8Array): void {
    this.spare(bytes.length).set(bytes);
    this.end += bytes.length;
  }

  /** Index of `byte` in the live bytes at or after `from`, or -1. */
  indexOf(byte: number, from = 0): number {
    const i = this.data.subarray(this.start + from, this.end).indexOf(byte);
    return i < 0 ? -1 : i + from;
  }

  /** Makes room for `min` bytes after the live ones. */
  private reserve(min: number): void {
    const live = this.end - this.start;
    if (this.start > 0 && this.data.length - live >= min && live <= this.data.length / 2) {
      this.data.copyWithin(0, this.start, this.end);
    } else {
      let cap = this.data.length;
      while (cap - live < min) cap *= 2;
      const next = new Uint8Array(new ArrayBuffer(cap));
      next.set(this.data.subarray(this.start, this.end));
      this.data = next;
    }
    this.start = 0;
    this.end = live;
  }

  /** Drops every live byte. */
  clear(): void {
    this.start = 0;
    this.end = 0;
  }
}
