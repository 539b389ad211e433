/**
 * The generational slab: entries named by a token, `index | generation << 20`, that the
 * kernel carries back (an epoll event's data, an io_uring CQE's user_data). The one slab
 * both drivers use: readiness registrations (registry.ts) and io_uring ops (uring/driver.ts).
 *
 * Invariants:
 * - A slot's generation changes every time its entry is removed, so a token the kernel
 *   queued for the slot's previous owner never matches the next one: `get()` answers
 *   undefined for it (a stale event is dropped, never delivered to the wrong owner).
 * - Tokens are non-negative int32s (20 index bits, 11 generation bits).
 * - A removed entry's `token` is set to -1, so an object kept for reuse is never found
 *   under the token it had.
 *
 * Must never: hand out a slot that is in use, or let a stale token reach a live entry.
 * Must never import: lib/executor.ts, lib/task/**, lib/net/**, lib/fs/**, lib/interop/**
 * Must never import: lib/driver/readiness/**, lib/driver/uring/**
 */

export const INDEX_BITS = 20;
export const INDEX_MASK = (1 << INDEX_BITS) - 1;
const GEN_MASK = 0x7ff; // 11 bits: the token stays a non-negative int32

/** What a slab holds: anything with a token the slab sets. */
export interface SlabEntry {
  token: number;
}

/**
 * A generational slab of `T`.
 *
 * @example
 * ```ts
 * const slab = new Slab<{ token: number; fd: number }>("registrations");
 * const e = slab.insert(() => ({ token: 0, fd: 7 }));
 * slab.get(e.token) === e; // true
 * slab.remove(e);          // e.token is now -1; the old token is stale
 * ```
 */
export class Slab<T extends SlabEntry> {
  private readonly slots: (T | undefined)[] = [];
  private readonly gens: number[] = [];
  private readonly free: number[] = [];
  private count = 0;

  /** @param what names the entries in the "too many" error. */
  constructor(private readonly what: string) {}

  /** Entries in use. */
  get size(): number {
    return this.count;
  }

  /**
   * Puts an entry in a free slot and sets its token. `make(index)` builds it; with
   * `reuse`, the object removed from that slot last time (see {@link remove}'s `keep`)
   * is taken instead when there is one, so hot paths allocate nothing.
   */
  insert(make: (index: number) => T, reuse = false): T {
    const index = this.free.length > 0 ? this.free.pop()! : this.slots.length;
    if (index > INDEX_MASK) throw new RangeError(`Too many ${this.what}: ${index} (max ${INDEX_MASK})`);
    const prev = this.slots[index];
    const e = reuse && prev !== undefined ? prev : make(index);
    const gen = this.gens[index] ?? 0;
    e.token = index | (gen << INDEX_BITS);
    this.slots[index] = e;
    this.gens[index] = gen;
    this.count++;
    return e;
  }

  /** The live entry `token` names, or undefined when the token is stale or free. */
  get(token: number): T | undefined {
    const e = this.slots[token & INDEX_MASK];
    return e !== undefined && e.token === token ? e : undefined;
  }

  /**
   * Frees `e`'s slot: its token goes stale and `e.token` becomes -1. With `keep` the
   * object stays in the slot, to be handed out again by `insert(…, true)`.
   */
  remove(e: T, keep = false): void {
    if (e.token < 0) return;
    const index = e.token & INDEX_MASK;
    if (this.slots[index] !== e) return;
    this.gens[index] = ((this.gens[index] ?? 0) + 1) & GEN_MASK;
    if (!keep) this.slots[index] = undefined;
    e.token = -1;
    this.free.push(index);
    this.count--;
  }

  /** Calls `fn` for each live entry (the slab may change meanwhile: a snapshot is taken). */
  forEach(fn: (e: T) => void): void {
    const live: T[] = [];
    for (const e of this.slots) if (e !== undefined && e.token >= 0) live.push(e);
    for (const e of live) fn(e);
  }
}
