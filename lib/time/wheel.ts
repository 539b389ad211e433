/**
 * The hierarchical timer wheel: a pure data structure that files timers by deadline and
 * hands back the ones that are due (tokio's design).
 *
 * Shape: 1 ms resolution, 6 levels × 64 slots. A slot at level L is 64^L ms wide, so level
 * L spans 64^(L+1) ms and the whole wheel 64^6 ms (~2.2 years). An entry with deadline d
 * sits at the level of the highest base-64 digit in which d differs from `elapsed`, in the
 * slot named by d's digit at that level. Each slot is an intrusive circular doubly-linked
 * list (sentinel head), and each level has an `occupied` bitmap kept as two int32 words,
 * so insert and remove are O(1) and finding the next slot is a couple of clz32 calls.
 *
 * Invariants:
 * - Every entry is in exactly one list: a wheel slot, `due` (deadline <= elapsed at the
 *   time it was inserted; fires on the next advance()) or `firing` (due now, inside
 *   advance()). `size` counts all three; `deadline` is -1 exactly when not inserted.
 * - A wheel slot's bit is set exactly when its list is non-empty.
 * - For levels 0–4, an entry's slot starts after `elapsed` and inside elapsed's current
 *   level-(L+1) span, so the lowest non-empty level holds the earliest slot. Only the top
 *   level wraps (see "Far deadlines").
 * - `elapsed` never goes backward. While fire() runs, `elapsed` equals the entry's deadline,
 *   except for entries inserted already due: they fire first in the next advance(), before
 *   time moves, so they see the `elapsed` that call started from (>= their deadline).
 *
 * Far deadlines: a deadline 64^6 ms or more past `elapsed` is clamped to the top level, in the
 * slot of its level-5 digit (the top level is used as a ring). When that slot comes round
 * (every 64^6 ms) the entry is re-cascaded: it stays in the top level until its deadline is
 * within reach, then walks down. Its deadline is never changed, so it fires exactly at that
 * deadline, never earlier; nextDeadline() may report those slot times (one wake-up per
 * ~2.2 years per far entry).
 *
 * Times above 2^32 ms: JS bitwise operators see only the low 32 bits, so digits from bit 30
 * up are found by division by powers of two (exact for integers below 2^53), never by shifts.
 *
 * This module must never read a clock (time is passed in), never schedule anything or
 * import the runtime, and never allocate on insert, remove or advance.
 */

/** Number of levels. */
const LEVELS = 6;
/** Slots per level. */
const SLOTS = 64;
/** Mask of a slot index / one base-64 digit. */
const SLOT_MASK = 63;
/** The top level, where far deadlines are clamped. */
const TOP_LEVEL = LEVELS - 1;
/** List index of the first non-wheel list: entries already due when inserted. */
const DUE = LEVELS * SLOTS;
/** List index of the entries being fired by the current advance(). */
const FIRING = DUE + 1;
/** Width in ms of one slot at each level: 64^L. */
const SLOT_WIDTH: readonly number[] = [1, 64, 4096, 262144, 16777216, 1073741824];

/** A 32-bit word's low set bit index (x !== 0). */
function ctz(x: number): number {
  return 31 - Math.clz32(x & -x);
}

/** The lowest set bit at index >= from in the 64-bit word (lo, hi), or -1. */
function firstSetFrom(lo: number, hi: number, from: number): number {
  if (from < 32) {
    const low = lo & (-1 << from);
    if (low !== 0) return ctz(low);
    return hi !== 0 ? 32 + ctz(hi) : -1;
  }
  if (from >= SLOTS) return -1;
  const high = hi & (-1 << (from - 32));
  return high !== 0 ? 32 + ctz(high) : -1;
}

/** The level for deadline `when` seen from `elapsed` (when > elapsed >= 0). */
function levelFor(elapsed: number, when: number): number {
  // Bits 32 and up differ: the highest differing digit is at bit 30 or above, i.e. level 5
  // or beyond, and beyond is clamped to the top. (x - (x >>> 0)) is x's high part, exactly.
  if (elapsed - (elapsed >>> 0) !== when - (when >>> 0)) return TOP_LEVEL;
  // Same high word: `^` works on the low 32 bits exactly. `| SLOT_MASK` makes level 0 the
  // minimum; the top bit (31) gives 31 / 6 = level 5.
  const significant = 31 - Math.clz32((elapsed ^ when) | SLOT_MASK);
  return (significant / 6) | 0;
}

/** The slot for `when` at `level`: its base-64 digit there. ToInt32 truncates, when > 0. */
function slotFor(when: number, level: number): number {
  return (when / SLOT_WIDTH[level]!) & SLOT_MASK;
}

/**
 * An entry in a {@link TimerWheel}. Subclass it and override {@link TimerEntry.fire}; an
 * entry is inserted in at most one wheel at a time. Fields prefixed `_` belong to the wheel.
 *
 * @example
 * ```ts
 * class Wake extends TimerEntry {
 *   constructor(readonly waker: Waker) { super(); }
 *   override fire(): void { this.waker.wake(); }
 * }
 * wheel.insert(new Wake(cx.waker), wheel.elapsed + 100);
 * ```
 */
export class TimerEntry {
  /** Absolute deadline in wheel ms, set by insert(); -1 when not inserted. */
  deadline = -1;
  /** @internal Index of the list holding this entry (level * 64 + slot, DUE, FIRING), or -1. */
  _index = -1;
  /** @internal Previous entry in the list; the entry itself when not inserted. */
  _prev: TimerEntry = this;
  /** @internal Next entry in the list; the entry itself when not inserted. */
  _next: TimerEntry = this;
  /** @internal The wheel this entry is inserted in, or null. */
  _wheel: TimerWheel | null = null;

  /**
   * Called by advance() once the deadline has passed. The entry is already removed
   * (deadline is -1) and may be re-inserted; `wheel.elapsed` is the deadline it fired for.
   *
   * @example
   * ```ts
   * class Tick extends TimerEntry {
   *   constructor(readonly wheel: TimerWheel, readonly period: number) { super(); }
   *   override fire(): void { this.wheel.insert(this, this.wheel.elapsed + this.period); }
   * }
   * ```
   */
  fire(): void {}
}

/**
 * A hierarchical timer wheel (6 levels × 64 slots, 1 ms). Time is whatever the caller passes
 * to advance(): the wheel never reads a clock.
 *
 * @example
 * ```ts
 * const wheel = new TimerWheel(0);
 * wheel.insert(entry, 250);
 * const t = wheel.nextDeadline(); // <= 250, the driver's wait timeout is t - now
 * wheel.advance(250);             // calls entry.fire(), returns 1
 * ```
 */
export class TimerWheel {
  /** Sentinel heads of the circular lists: 384 wheel slots, then DUE and FIRING. */
  private readonly _lists: TimerEntry[] = [];
  /** Occupied bitmaps: words 2L (slots 0–31) and 2L+1 (slots 32–63) for level L. */
  private readonly _occupied = new Int32Array(LEVELS * 2);
  private _elapsed: number;
  private _size = 0;
  /** List index of the slot found by the last _nextExpiration(). */
  private _nextIndex = -1;
  /** True while advance() runs, to refuse re-entrant advance() from fire(). */
  private _advancing = false;

  /**
   * @param startMs the wheel's initial time: a non-negative safe integer (default 0).
   * @example
   * ```ts
   * const wheel = new TimerWheel(Math.floor(performance.now()));
   * ```
   */
  constructor(startMs = 0) {
    if (!Number.isSafeInteger(startMs) || startMs < 0) {
      throw new RangeError(`Cannot start a timer wheel at ${startMs} ms: must be a non-negative safe integer`);
    }
    this._elapsed = startMs;
    for (let i = 0; i <= FIRING; i++) this._lists.push(new TimerEntry());
  }

  /**
   * The time the wheel has been advanced to.
   * @example
   * ```ts
   * new TimerWheel(5).elapsed; // 5
   * ```
   */
  get elapsed(): number {
    return this._elapsed;
  }

  /**
   * The number of inserted entries (including those due but not yet fired).
   * @example
   * ```ts
   * wheel.insert(entry, 10);
   * wheel.size; // 1
   * ```
   */
  get size(): number {
    return this._size;
  }

  /**
   * Arms `entry` to fire at `deadlineMs` (a safe integer, wheel ms). An entry already
   * inserted (here or in another wheel) is moved. A deadline <= elapsed is due: it fires on
   * the next advance() call, whatever its argument (from inside fire(): the next call, not
   * the current one, so an entry that keeps re-arming itself as due cannot loop forever).
   *
   * @example
   * ```ts
   * wheel.insert(entry, wheel.elapsed + 30_000); // re-arming just moves it
   * ```
   */
  insert(entry: TimerEntry, deadlineMs: number): void {
    if (!Number.isSafeInteger(deadlineMs)) {
      throw new RangeError(`Cannot insert a timer with deadline ${deadlineMs}: must be a safe integer`);
    }
    if (entry._wheel !== null) entry._wheel.remove(entry);
    entry.deadline = deadlineMs;
    entry._wheel = this;
    this._size++;
    const elapsed = this._elapsed;
    if (deadlineMs <= elapsed) {
      this._link(entry, DUE);
    } else {
      const level = levelFor(elapsed, deadlineMs);
      this._link(entry, level * SLOTS + slotFor(deadlineMs, level));
    }
  }

  /**
   * Disarms `entry` in O(1). A no-op when it is not inserted in this wheel.
   *
   * @example
   * ```ts
   * wheel.remove(entry); // entry.deadline === -1, it will not fire
   * ```
   */
  remove(entry: TimerEntry): void {
    if (entry._wheel !== this) return;
    this._unlink(entry);
    entry._index = -1;
    entry.deadline = -1;
    entry._wheel = null;
    this._size--;
  }

  /**
   * A time t at which advance(t) fires or cascades something: t <= the earliest deadline,
   * exact when that entry is at level 0 (same 64 ms span as elapsed), otherwise the start of
   * its slot. Returns elapsed when something is already due, -1 when the wheel is empty.
   * A driver waits `max(0, t - now)` ms.
   *
   * @example
   * ```ts
   * const t = wheel.nextDeadline();
   * const timeoutMs = t < 0 ? -1 : Math.max(0, t - now);
   * ```
   */
  nextDeadline(): number {
    if (this._size === 0) return -1;
    if (!this._isEmpty(DUE) || !this._isEmpty(FIRING)) return this._elapsed;
    return this._nextExpiration();
  }

  /**
   * Moves time forward to `nowMs` (a safe integer) and fires every entry whose deadline is
   * <= nowMs, in deadline order; equal deadlines in insertion order. Entries inserted already
   * due fire first, in insertion order, before time moves. Returns how many fired. A smaller
   * nowMs does not move time back, but already-due entries still fire.
   *
   * fire() may insert and remove entries freely. Entries it inserts with a deadline <= the
   * current `elapsed` (which is the firing entry's deadline) fire on the next advance();
   * those with elapsed < deadline <= nowMs fire in this call, each at its own deadline.
   * If fire() throws, the exception propagates; the wheel stays consistent, `elapsed` stays
   * at the deadline being fired and unfired due entries fire on the next advance().
   * Calling advance() from inside fire() throws.
   *
   * @example
   * ```ts
   * const fired = wheel.advance(Math.floor(performance.now()) - origin);
   * ```
   */
  advance(nowMs: number): number {
    if (!Number.isSafeInteger(nowMs)) {
      throw new RangeError(`Cannot advance a timer wheel to ${nowMs}: must be a safe integer`);
    }
    if (this._advancing) throw new Error("Cannot call advance() from inside fire()");
    this._advancing = true;
    try {
      // Entries that were already due fire now; later due inserts wait for the next call.
      this._adoptDue();
      let fired = this._fireAll();
      for (;;) {
        const t = this._nextExpiration();
        if (t < 0 || t > nowMs) break;
        this._elapsed = t;
        this._cascade(this._nextIndex);
        fired += this._fireAll();
      }
      if (nowMs > this._elapsed) this._elapsed = nowMs;
      return fired;
    } finally {
      this._advancing = false;
    }
  }

  /** Appends `entry` to list `index` and marks a wheel slot occupied. */
  private _link(entry: TimerEntry, index: number): void {
    const head = this._lists[index]!;
    const tail = head._prev;
    entry._prev = tail;
    entry._next = head;
    tail._next = entry;
    head._prev = entry;
    entry._index = index;
    if (index < DUE) this._occupied[index >> 5]! |= 1 << (index & 31);
  }

  /** Takes `entry` out of its list, clearing the slot's bit when the list empties. */
  private _unlink(entry: TimerEntry): void {
    entry._prev._next = entry._next;
    entry._next._prev = entry._prev;
    entry._prev = entry;
    entry._next = entry;
    const index = entry._index;
    if (index < DUE && this._isEmpty(index)) this._occupied[index >> 5]! &= ~(1 << (index & 31));
  }

  private _isEmpty(index: number): boolean {
    const head = this._lists[index]!;
    return head._next === head;
  }

  /**
   * Finds the earliest occupied slot; returns its start time and stores its list index in
   * _nextIndex, or returns -1 when the wheel slots are empty.
   */
  private _nextExpiration(): number {
    const elapsed = this._elapsed;
    const occupied = this._occupied;
    // The lowest non-empty level holds the earliest slot (see the header's invariants).
    for (let level = 0; level < LEVELS; level++) {
      const lo = occupied[2 * level]!;
      const hi = occupied[2 * level + 1]!;
      if ((lo | hi) === 0) continue;
      const width = SLOT_WIDTH[level]!;
      const range = width * SLOTS;
      // The first occupied slot after elapsed's own, wrapping round (only the top level does).
      const nowSlot = (elapsed / width) & SLOT_MASK;
      let slot = firstSetFrom(lo, hi, nowSlot + 1);
      if (slot < 0) slot = firstSetFrom(lo, hi, 0);
      let start = Math.floor(elapsed / range) * range + slot * width;
      // A top-level slot at or before elapsed's holds far entries: it is next due one turn on.
      if (start <= elapsed) start += range;
      this._nextIndex = level * SLOTS + slot;
      return start;
    }
    return -1;
  }

  /**
   * Empties wheel slot `index` at its start time (this._elapsed): entries whose deadline has
   * come go to FIRING, the others move down to the level their deadline now belongs to.
   */
  private _cascade(index: number): void {
    const elapsed = this._elapsed;
    // 1. Detach the whole list and clear its bit first: a far entry may be re-filed into this
    //    very slot (top-level ring) and must not be walked again in this pass.
    const head = this._lists[index]!;
    let entry = head._next; // the detached chain's tail still points at head: the stop mark
    head._next = head;
    head._prev = head;
    this._occupied[index >> 5]! &= ~(1 << (index & 31));
    // 2. Walk the detached chain in order, which keeps equal deadlines in insertion order.
    while (entry !== head) {
      const next = entry._next;
      const deadline = entry.deadline;
      if (deadline <= elapsed) {
        // 3a. Due: its deadline is this slot's start, i.e. exactly now.
        this._link(entry, FIRING);
      } else {
        // 3b. Not yet: re-file relative to the new elapsed. Its digits above this level now
        //     match elapsed's, so it lands at a lower level (a far entry may stay on top).
        const level = levelFor(elapsed, deadline);
        this._link(entry, level * SLOTS + slotFor(deadline, level));
      }
      entry = next;
    }
  }

  /** Moves every DUE entry to the end of FIRING (an O(1) splice, plus relabelling). */
  private _adoptDue(): void {
    const due = this._lists[DUE]!;
    if (due._next === due) return;
    const firing = this._lists[FIRING]!;
    for (let e = due._next; e !== due; e = e._next) e._index = FIRING;
    const first = due._next;
    const last = due._prev;
    const tail = firing._prev;
    tail._next = first;
    first._prev = tail;
    last._next = firing;
    firing._prev = last;
    due._next = due;
    due._prev = due;
  }

  /** Removes and fires FIRING entries one by one until it is empty; returns the count. */
  private _fireAll(): number {
    const firing = this._lists[FIRING]!;
    let fired = 0;
    while (firing._next !== firing) {
      const entry = firing._next;
      this.remove(entry);
      fired++;
      entry.fire();
    }
    return fired;
  }
}
