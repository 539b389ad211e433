/**
 * Owned buffers for io_uring ops: ArrayBuffer-backed memory the kernel may read or write
 * until an op's final CQE, pooled by power-of-two size class.
 *
 * Why not the caller's Uint8Array: its storage may be inline in a small TypedArray (which
 * the GC can move, so a pointer taken at submission would dangle), and after a cancel the
 * caller is free to reuse it while the kernel may still be writing into it. Ops therefore
 * read into / write from an {@link OwnedBuf} and copy to or from the caller's buffer in
 * the poll that completes them: one memcpy per op (≈ 5 µs per 64 KiB, against the
 * kernel crossing and the wake-up that every op costs anyway).
 *
 * Invariants: a buffer is in exactly one place: the pool's free list, or one op (which
 * the driver's op table references until the final CQE). `addr` is computed once; the
 * ArrayBuffer is never transferred or detached.
 *
 * Must never: hand out a buffer that an op still holds, or keep more than a few idle
 * buffers per class (memory is returned to the GC beyond that).
 */
import { ptr } from "bun:ffi";

/** Smallest class: 4 KiB (2^12). */
const MIN_SHIFT = 12;
/** Largest class: 4 MiB (2^22). */
const MAX_SHIFT = 22;
/** Idle buffers kept per class: many small ones, few large ones. */
function keepFor(shift: number): number {
  return shift <= 16 ? 256 : 8;
}

/**
 * One owned buffer.
 *
 * @example
 * ```ts
 * const b = pool.get(1000); // a 4 KiB buffer
 * b.bytes.set(data.subarray(0, 1000));
 * pool.put(b);
 * ```
 */
export class OwnedBuf {
  /** The data pointer, stable for the buffer's life (ArrayBuffer-backed). */
  readonly addr: number;
  private words: Uint32Array | null = null;
  constructor(
    readonly bytes: Uint8Array,
    readonly shift: number,
  ) {
    // SAFETY: `bytes` views its own ArrayBuffer (never inline storage) that this object
    // keeps alive; whoever hands `addr` to the kernel keeps this object referenced.
    this.addr = ptr(bytes) as number;
  }

  /** A u32 view of the whole buffer (for structs the kernel reads: msghdr, iovec), made once. */
  get u32(): Uint32Array {
    return this.words ?? (this.words = new Uint32Array(this.bytes.buffer));
  }
}

/**
 * A pool of owned buffers by size class.
 *
 * @example
 * ```ts
 * const pool = new BufferPool();
 * const b = pool.get(65536);
 * pool.put(b);
 * ```
 */
export class BufferPool {
  private readonly free: OwnedBuf[][] = [];
  /** Buffers currently handed out (for the leak tests). */
  outstanding = 0;

  constructor() {
    for (let s = 0; s <= MAX_SHIFT; s++) this.free.push([]);
  }

  /** The largest size one buffer can have. */
  static readonly MAX = 1 << MAX_SHIFT;

  /** A buffer of at least `size` bytes (size ≤ BufferPool.MAX). */
  get(size: number): OwnedBuf {
    let shift = MIN_SHIFT;
    while (1 << shift < size) shift++;
    if (shift > MAX_SHIFT) throw new RangeError(`Owned buffer of ${size} bytes exceeds the ${BufferPool.MAX}-byte maximum`);
    this.outstanding++;
    const list = this.free[shift]!;
    return list.length > 0 ? list.pop()! : new OwnedBuf(new Uint8Array(new ArrayBuffer(1 << shift)), shift);
  }

  /** Returns a buffer no op holds any more. */
  put(b: OwnedBuf): void {
    this.outstanding--;
    const list = this.free[b.shift]!;
    if (list.length < keepFor(b.shift)) list.push(b);
  }
}
