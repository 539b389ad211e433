/**
 * The simulated network's event queue: a binary min-heap of timed events ordered by
 * (virtual time, key). The key breaks ties between events due at the same instant; the
 * network draws it from the seed, so simultaneous deliveries on different connections
 * happen in a seeded order (one connection's segments are one event at a time, so they
 * never overtake each other).
 *
 * Invariants: an event is in the queue at most once (`pos` ≥ 0 exactly while queued);
 * keys are unique, so the order is total and the same on every run.
 *
 * Must never: fire an event itself (the network pops and fires), or allocate per push/pop
 * beyond the backing array's growth.
 * Must never import: lib/executor.ts, lib/task/**, bun:ffi
 */

/**
 * Something that happens at a virtual time: a segment arriving, a retransmission timer.
 *
 * @example
 * ```ts
 * class Ping extends SimEvent { fire() { console.log("at", this.at); } }
 * ```
 */
export abstract class SimEvent {
  /** Virtual time (ms) it is due. */
  at = 0;
  /** Tie-break among events due at the same time (unique). */
  key = 0;
  /** Its index in the heap, or -1 when not queued. */
  pos = -1;
  /** Runs the event (called by the network with the clock at `at`). */
  abstract fire(): void;
}

/**
 * A min-heap of {@link SimEvent}s.
 *
 * @example
 * ```ts
 * const q = new EventQueue();
 * q.push(ev);            // ev.at and ev.key set
 * const next = q.peek(); // earliest
 * q.pop();
 * ```
 */
export class EventQueue {
  private readonly h: SimEvent[] = [];

  get size(): number {
    return this.h.length;
  }

  /** The earliest event, or undefined. */
  peek(): SimEvent | undefined {
    return this.h[0];
  }

  push(e: SimEvent): void {
    if (e.pos >= 0) throw new RangeError("This simulation event is already queued");
    const h = this.h;
    e.pos = h.length;
    h.push(e);
    this.up(e.pos);
  }

  /** Removes and returns the earliest event. */
  pop(): SimEvent | undefined {
    const h = this.h;
    const top = h[0];
    if (top === undefined) return undefined;
    this.removeAt(0);
    return top;
  }

  /** Removes `e` if queued. */
  remove(e: SimEvent): void {
    if (e.pos >= 0) this.removeAt(e.pos);
  }

  private removeAt(i: number): void {
    const h = this.h;
    const gone = h[i]!;
    const last = h.pop()!;
    gone.pos = -1;
    if (last === gone) return;
    h[i] = last;
    last.pos = i;
    this.down(i);
    this.up(last.pos);
  }

  private less(a: SimEvent, b: SimEvent): boolean {
    return a.at < b.at || (a.at === b.at && a.key < b.key);
  }

  private up(i: number): void {
    const h = this.h;
    const e = h[i]!;
    while (i > 0) {
      const p = (i - 1) >> 1;
      const pe = h[p]!;
      if (!this.less(e, pe)) break;
      h[i] = pe;
      pe.pos = i;
      i = p;
    }
    h[i] = e;
    e.pos = i;
  }

  private down(i: number): void {
    const h = this.h;
    const n = h.length;
    const e = h[i]!;
    for (;;) {
      let c = 2 * i + 1;
      if (c >= n) break;
      if (c + 1 < n && this.less(h[c + 1]!, h[c]!)) c++;
      const ce = h[c]!;
      if (!this.less(ce, e)) break;
      h[i] = ce;
      ce.pos = i;
      i = c;
    }
    h[i] = e;
    e.pos = i;
  }
}
