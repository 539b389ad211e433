/**
 * Table tests for the hierarchical timer wheel (lib/time/wheel.ts).
 *
 * Cost of arm + cancel: 1e6 × (insert(e, now + d) then remove(e)), d cycling over
 * 1 ms … 1 day (levels 0–4), with 10 000 other timers armed: ~12.5 ns per insert+remove
 * pair on a quiet machine, 21–35 ns while the 2-core VM ran at load average 5 (Bun 1.4.5;
 * the first 1e6, with JIT warm-up, ~38 ns). Measured with a scratch loop timed by
 * Bun.nanoseconds(), not committed.
 *
 * Every test is deterministic: random cases come from a seeded PRNG.
 */
import { describe, expect, test } from "bun:test";
import { TimerEntry, TimerWheel } from "../lib/time/wheel.ts";

/** An entry that records the wheel time it fired at (during fire(), elapsed is its deadline). */
class Probe extends TimerEntry {
  readonly firedAt: number[] = [];
  constructor(
    readonly wheel: TimerWheel,
    readonly log: Probe[] = [],
  ) {
    super();
  }
  override fire(): void {
    this.firedAt.push(this.wheel.elapsed);
    this.log.push(this);
  }
}

/** A small seeded PRNG (mulberry32): returns floats in [0, 1). */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A random distance, log-uniform up to 2^maxBits ms, so every level gets its share. */
function logDistance(rand: () => number, maxBits: number): number {
  return Math.floor(2 ** (rand() * maxBits));
}

/**
 * Drives the wheel as the runtime would: advance(nextDeadline()) until `until`, checking
 * that each wake-up is never before elapsed and that the reported time only moves forward.
 * Returns the number of wake-ups.
 */
function drive(wheel: TimerWheel, until: number): number {
  let wakes = 0;
  for (;;) {
    const t = wheel.nextDeadline();
    if (t < 0 || t > until) break;
    expect(t).toBeGreaterThanOrEqual(wheel.elapsed);
    wheel.advance(t);
    wakes++;
    if (wakes > 1_000_000) throw new Error("drive() is looping");
  }
  wheel.advance(until);
  return wakes;
}

const W = 64;

describe("level 0 boundaries", () => {
  test.each([
    { deadline: 1, next: 1 },
    { deadline: 63, next: 63 },
    { deadline: 64, next: 64 },
    { deadline: 65, next: 64 },
  ])("deadline $deadline fires exactly at $deadline and nextDeadline() is $next", ({ deadline, next }) => {
    const wheel = new TimerWheel();
    const p = new Probe(wheel);
    wheel.insert(p, deadline);
    expect(wheel.nextDeadline()).toBe(next);
    expect(wheel.advance(deadline - 1)).toBe(0);
    expect(p.firedAt).toEqual([]);
    expect(wheel.advance(deadline)).toBe(1);
    expect(p.firedAt).toEqual([deadline]);
    expect(wheel.advance(deadline + 10_000)).toBe(0);
    expect(p.firedAt).toEqual([deadline]);
    expect(wheel.size).toBe(0);
  });

  test("deadline 0 at time 0 is already due: nextDeadline() is 0 and advance(0) fires it", () => {
    const wheel = new TimerWheel();
    const p = new Probe(wheel);
    wheel.insert(p, 0);
    expect(wheel.nextDeadline()).toBe(0);
    expect(wheel.advance(0)).toBe(1);
    expect(p.firedAt).toEqual([0]);
    expect(wheel.nextDeadline()).toBe(-1);
  });

  test("a deadline in the past fires on the next advance(), even one that does not move time", () => {
    const wheel = new TimerWheel(1000);
    const p = new Probe(wheel);
    wheel.insert(p, 400);
    expect(wheel.nextDeadline()).toBe(1000);
    expect(wheel.advance(900)).toBe(1);
    expect(wheel.elapsed).toBe(1000);
    expect(p.firedAt).toEqual([1000]);
  });
});

describe("cascade across every level", () => {
  const cases: { level: number; deadline: number }[] = [];
  for (let level = 1; level <= 5; level++) {
    for (const delta of [-1, 0, 1]) cases.push({ level, deadline: W ** level + delta });
  }

  test.each(cases)("level $level: deadline $deadline in one jump fires once, not at deadline - 1", ({ deadline }) => {
    const wheel = new TimerWheel();
    const p = new Probe(wheel);
    wheel.insert(p, deadline);
    expect(wheel.nextDeadline()).toBeLessThanOrEqual(deadline);
    expect(wheel.advance(deadline - 1)).toBe(0);
    expect(p.firedAt).toEqual([]);
    expect(wheel.nextDeadline()).toBe(deadline); // after the cascade it sits at level 0: exact
    expect(wheel.advance(deadline)).toBe(1);
    expect(p.firedAt).toEqual([deadline]);
  });

  test.each(cases)("level $level: deadline $deadline in many small steps fires once, exactly at it", ({ deadline }) => {
    const wheel = new TimerWheel();
    const p = new Probe(wheel);
    const rand = prng(deadline);
    wheel.insert(p, deadline);
    // Irregular strides to 130 ms before the deadline, then 1 ms steps past it.
    const stride = Math.max(1, Math.floor(deadline / 300));
    let now = 0;
    while (now < deadline - 130) {
      now = Math.min(deadline - 130, now + 1 + Math.floor(rand() * stride));
      expect(wheel.advance(now)).toBe(0);
    }
    for (now = Math.max(now, 0) + 1; now < deadline + 10; now++) {
      wheel.advance(now);
      expect(p.firedAt).toEqual(now < deadline ? [] : [deadline]);
    }
  });

  test.each(cases)("level $level: deadline $deadline driven by nextDeadline() fires exactly at it", ({ deadline }) => {
    const wheel = new TimerWheel();
    const p = new Probe(wheel);
    wheel.insert(p, deadline);
    const wakes = drive(wheel, deadline + 5);
    expect(p.firedAt).toEqual([deadline]);
    expect(wakes).toBeLessThanOrEqual(6); // at most one wake per level on the way down
  });

  test("all boundaries in one wheel fire in deadline order, each once, in one jump", () => {
    const wheel = new TimerWheel();
    const log: Probe[] = [];
    const deadlines = [1, 63, 64, 65, ...cases.map((c) => c.deadline)];
    const probes = deadlines.map((d) => {
      const p = new Probe(wheel, log);
      wheel.insert(p, d);
      return p;
    });
    expect(wheel.advance(W ** 5 + 1)).toBe(deadlines.length);
    expect(log.map((p) => p.firedAt[0])).toEqual([...deadlines].sort((a, b) => a - b));
    for (const [i, p] of probes.entries()) expect(p.firedAt).toEqual([deadlines[i]!]);
  });
});

describe("non-zero start", () => {
  const starts = [1, 63, 64, 4095, 2 ** 32 - 1, 2 ** 32 + 17, W ** 6 - 3, 5 * W ** 6 + 99];
  const offsets = [1, 2, 63, 64, 65, 4097, W ** 5 + 1, W ** 6 - 1];

  test.each(starts)("from %p, every offset fires exactly at its deadline (jump and driven)", (start) => {
    for (const offset of offsets) {
      const deadline = start + offset;
      const jump = new TimerWheel(start);
      const a = new Probe(jump);
      jump.insert(a, deadline);
      expect(jump.elapsed).toBe(start);
      expect(jump.nextDeadline()).toBeLessThanOrEqual(deadline);
      expect(jump.advance(deadline - 1)).toBe(0);
      expect(jump.advance(deadline)).toBe(1);
      expect(a.firedAt).toEqual([deadline]);

      const driven = new TimerWheel(start);
      const b = new Probe(driven);
      driven.insert(b, deadline);
      drive(driven, deadline + 3);
      expect(b.firedAt).toEqual([deadline]);
    }
  });

  test("crossing 2^32 ms one step at a time", () => {
    const start = 2 ** 32 - 70;
    const wheel = new TimerWheel(start);
    const probes = [1, 69, 70, 71, 140].map((offset) => {
      const p = new Probe(wheel);
      wheel.insert(p, start + offset);
      return p;
    });
    for (let now = start + 1; now <= start + 150; now++) wheel.advance(now);
    expect(probes.map((p) => p.firedAt)).toEqual([1, 69, 70, 71, 140].map((o) => [start + o]));
  });
});

describe("far deadlines beyond the top level", () => {
  // A deadline 64^6 ms or more ahead is clamped to the top level (by its level-5 digit) and
  // re-cascaded each time that slot comes round, once per 64^6 ms; its deadline is kept,
  // so it fires exactly at it.
  const cases = [
    { start: 0, deadline: W ** 6 - 1 },
    { start: 0, deadline: W ** 6 },
    { start: 0, deadline: W ** 6 + 1 },
    { start: 0, deadline: 2 * W ** 6 + 7 },
    { start: 12_345, deadline: 12_345 + W ** 6 },
    { start: 3 * W ** 5 + 5, deadline: 3 * W ** 5 + 4 + 3 * W ** 6 },
    { start: 0, deadline: 2 ** 40 + 123 },
    { start: 77, deadline: 2 ** 45 },
    { start: 0, deadline: Number.MAX_SAFE_INTEGER },
  ];

  test.each(cases)("from $start, deadline $deadline fires exactly at it in one jump", ({ start, deadline }) => {
    const wheel = new TimerWheel(start);
    const p = new Probe(wheel);
    wheel.insert(p, deadline);
    expect(wheel.nextDeadline()).toBeLessThanOrEqual(deadline);
    expect(wheel.advance(deadline - 1)).toBe(0);
    expect(p.firedAt).toEqual([]);
    expect(wheel.size).toBe(1);
    expect(wheel.nextDeadline()).toBe(deadline);
    expect(wheel.advance(deadline)).toBe(1);
    expect(p.firedAt).toEqual([deadline]);
  });

  test.each(cases)("from $start, deadline $deadline driven: one wake per turn of the top level", ({ start, deadline }) => {
    const wheel = new TimerWheel(start);
    const p = new Probe(wheel);
    wheel.insert(p, deadline);
    const wakes = drive(wheel, Math.min(deadline + 1, Number.MAX_SAFE_INTEGER));
    expect(p.firedAt).toEqual([deadline]);
    expect(wakes).toBeLessThanOrEqual(Math.ceil((deadline - start) / W ** 6) + 6);
  });

  test("a far entry sharing its top slot with a near one does not hold the near one back", () => {
    const wheel = new TimerWheel();
    const near = new Probe(wheel);
    const far = new Probe(wheel);
    wheel.insert(far, 2 * W ** 6 + 5 * W ** 5 + 1); // top slot 5, two turns away
    wheel.insert(near, 5 * W ** 5 + 2); // top slot 5, this turn
    drive(wheel, 3 * W ** 6);
    expect(near.firedAt).toEqual([5 * W ** 5 + 2]);
    expect(far.firedAt).toEqual([2 * W ** 6 + 5 * W ** 5 + 1]);
  });
});

describe("remove", () => {
  const cases = [
    { where: "level 0", deadline: 10 },
    { where: "level 1", deadline: 100 },
    { where: "level 2", deadline: 5000 },
    { where: "level 3", deadline: 300_000 },
    { where: "level 4", deadline: 20_000_000 },
    { where: "level 5", deadline: 2_000_000_000 },
    { where: "beyond the top level", deadline: 3 * W ** 6 + 17 },
  ];

  test.each(cases)("remove from $where: it never fires and its slot neighbours still do", ({ deadline }) => {
    const wheel = new TimerWheel();
    const before = new Probe(wheel);
    const target = new Probe(wheel);
    const after = new Probe(wheel);
    wheel.insert(before, deadline);
    wheel.insert(target, deadline);
    wheel.insert(after, deadline + 1);
    wheel.remove(target);
    expect(target.deadline).toBe(-1);
    expect(wheel.size).toBe(2);
    expect(wheel.advance(deadline + 1)).toBe(2);
    expect(target.firedAt).toEqual([]);
    expect(before.firedAt).toEqual([deadline]);
    expect(after.firedAt).toEqual([deadline + 1]);
    expect(wheel.nextDeadline()).toBe(-1);
  });

  test.each(cases)("remove from $where after it cascaded part way down", ({ deadline }) => {
    const wheel = new TimerWheel();
    const target = new Probe(wheel);
    wheel.insert(target, deadline);
    drive(wheel, deadline - 1);
    expect(wheel.size).toBe(1);
    wheel.remove(target);
    expect(wheel.size).toBe(0);
    expect(wheel.nextDeadline()).toBe(-1);
    expect(wheel.advance(deadline + 1)).toBe(0);
    expect(target.firedAt).toEqual([]);
  });

  test.each(cases)("remove the only entry of its slot at $where: nextDeadline() moves on to the next", ({ deadline }) => {
    const wheel = new TimerWheel();
    const alone = new TimerWheel();
    const target = new Probe(wheel);
    wheel.insert(target, deadline);
    wheel.insert(new Probe(wheel), 4 * W ** 6);
    alone.insert(new Probe(alone), 4 * W ** 6);
    wheel.remove(target);
    expect(wheel.nextDeadline()).toBe(alone.nextDeadline());
  });

  test("remove an entry that is already due", () => {
    const wheel = new TimerWheel(50);
    const p = new Probe(wheel);
    wheel.insert(p, 20);
    wheel.remove(p);
    expect(wheel.size).toBe(0);
    expect(wheel.nextDeadline()).toBe(-1);
    expect(wheel.advance(60)).toBe(0);
  });

  test("remove of an entry never inserted, or removed twice, is a no-op", () => {
    const wheel = new TimerWheel();
    const other = new Probe(wheel);
    wheel.insert(other, 5);
    const p = new Probe(wheel);
    wheel.remove(p);
    expect(wheel.size).toBe(1);
    wheel.insert(p, 7);
    wheel.remove(p);
    wheel.remove(p);
    expect(wheel.size).toBe(1);
    expect(p.deadline).toBe(-1);
    expect(wheel.advance(10)).toBe(1);
    expect(other.firedAt).toEqual([5]);
  });

  test("remove through a wheel the entry is not in leaves it armed in its own wheel", () => {
    const a = new TimerWheel();
    const b = new TimerWheel();
    const p = new Probe(a);
    a.insert(p, 30);
    b.remove(p);
    expect(a.size).toBe(1);
    expect(b.size).toBe(0);
    expect(a.advance(30)).toBe(1);
  });

  test("fire() removing another entry due at the same time stops it from firing", () => {
    const wheel = new TimerWheel();
    const victim = new Probe(wheel);
    class Killer extends TimerEntry {
      override fire(): void {
        wheel.remove(victim);
      }
    }
    wheel.insert(new Killer(), 40);
    wheel.insert(victim, 40);
    expect(wheel.advance(100)).toBe(1);
    expect(victim.firedAt).toEqual([]);
    expect(wheel.size).toBe(0);
  });
});

describe("re-insert (move)", () => {
  test.each([
    { first: 10, second: 5000 },
    { first: 5000, second: 10 },
    { first: W ** 4, second: 3 },
    { first: 3, second: 2 * W ** 6 },
    { first: 100, second: 100 },
    { first: 100, second: 0 },
    { first: 0, second: 70 },
  ])("moving $first → $second fires once, at $second", ({ first, second }) => {
    const wheel = new TimerWheel();
    const p = new Probe(wheel);
    wheel.insert(p, first);
    wheel.insert(p, second);
    expect(wheel.size).toBe(1);
    expect(p.deadline).toBe(second);
    drive(wheel, Math.max(first, second) + 1);
    expect(p.firedAt).toEqual([second]);
    expect(wheel.size).toBe(0);
  });

  test("inserting an entry armed in another wheel moves it there", () => {
    const a = new TimerWheel();
    const b = new TimerWheel(10);
    const p = new Probe(b);
    a.insert(p, 20);
    b.insert(p, 20);
    expect(a.size).toBe(0);
    expect(b.size).toBe(1);
    expect(a.advance(100)).toBe(0);
    expect(b.advance(100)).toBe(1);
    expect(p.firedAt).toEqual([20]);
  });
});

describe("fire() may insert and remove entries", () => {
  class Interval extends TimerEntry {
    readonly firedAt: number[] = [];
    constructor(
      readonly wheel: TimerWheel,
      readonly period: number,
    ) {
      super();
    }
    override fire(): void {
      this.firedAt.push(this.wheel.elapsed);
      this.wheel.insert(this, this.wheel.elapsed + this.period);
    }
  }

  test.each([1, 7, 64, 100, 4096])("an interval of %p ms re-inserting itself fires at every multiple in one advance", (period) => {
    const wheel = new TimerWheel();
    const tick = new Interval(wheel, period);
    wheel.insert(tick, period);
    const until = 20_000;
    const n = Math.floor(until / period);
    expect(wheel.advance(until)).toBe(n);
    expect(tick.firedAt).toEqual(Array.from({ length: n }, (_, i) => (i + 1) * period));
    expect(wheel.size).toBe(1);
    expect(tick.deadline).toBe((n + 1) * period);
  });

  test("an entry re-inserting itself as already due fires once per advance(), never in a loop", () => {
    const wheel = new TimerWheel();
    const tick = new Interval(wheel, 0);
    wheel.insert(tick, 5);
    expect(wheel.advance(100)).toBe(1); // at 5; re-armed at 5, already due: waits
    expect(wheel.nextDeadline()).toBe(100);
    expect(wheel.advance(100)).toBe(1); // at 100; re-armed at 100
    expect(wheel.advance(150)).toBe(1); // due entries fire before time moves: still at 100
    expect(wheel.advance(150)).toBe(1);
    expect(tick.firedAt).toEqual([5, 100, 100, 150]);
    expect(wheel.size).toBe(1);
  });

  test("an entry inserted by fire() fires this advance() when later than now-in-wheel, else the next", () => {
    const wheel = new TimerWheel();
    const later = new Probe(wheel);
    const due = new Probe(wheel);
    class Spawner extends TimerEntry {
      override fire(): void {
        wheel.insert(later, wheel.elapsed + 5); // 15: inside this advance's range
        wheel.insert(due, wheel.elapsed - 3); // 7: already due
      }
    }
    wheel.insert(new Spawner(), 10);
    expect(wheel.advance(100)).toBe(2);
    expect(later.firedAt).toEqual([15]);
    expect(due.firedAt).toEqual([]);
    expect(wheel.nextDeadline()).toBe(100);
    expect(wheel.advance(100)).toBe(1);
    expect(due.firedAt).toEqual([100]);
  });

  test("fire() re-arming an entry that is due in the same pass moves it", () => {
    const wheel = new TimerWheel();
    const moved = new Probe(wheel);
    class Mover extends TimerEntry {
      override fire(): void {
        wheel.insert(moved, 500);
      }
    }
    wheel.insert(new Mover(), 30);
    wheel.insert(moved, 30);
    expect(wheel.advance(100)).toBe(1);
    expect(moved.firedAt).toEqual([]);
    expect(wheel.advance(500)).toBe(1);
    expect(moved.firedAt).toEqual([500]);
  });

  test("a throwing fire() propagates; the rest fire on the next advance() at their deadline", () => {
    const wheel = new TimerWheel();
    class Boom extends TimerEntry {
      override fire(): void {
        throw new Error("boom");
      }
    }
    const log: Probe[] = [];
    const sameTime = new Probe(wheel, log);
    const later = new Probe(wheel, log);
    wheel.insert(new Boom(), 20);
    wheel.insert(sameTime, 20);
    wheel.insert(later, 25);
    expect(() => wheel.advance(30)).toThrow("boom");
    expect(wheel.size).toBe(2);
    expect(wheel.nextDeadline()).toBe(wheel.elapsed);
    expect(wheel.advance(30)).toBe(2);
    expect(sameTime.firedAt).toEqual([20]);
    expect(later.firedAt).toEqual([25]);
    expect(wheel.elapsed).toBe(30);
  });

  test("advance() called from inside fire() throws", () => {
    const wheel = new TimerWheel();
    let error: unknown = null;
    class Reenter extends TimerEntry {
      override fire(): void {
        try {
          wheel.advance(1000);
        } catch (e) {
          error = e;
        }
      }
    }
    wheel.insert(new Reenter(), 10);
    expect(wheel.advance(50)).toBe(1);
    expect(String(error)).toContain("Cannot call advance() from inside fire()");
    expect(wheel.elapsed).toBe(50);
  });
});

describe("many entries in one slot", () => {
  test("1000 entries with one deadline fire once each, in insertion order", () => {
    const wheel = new TimerWheel();
    const log: Probe[] = [];
    const probes = Array.from({ length: 1000 }, () => new Probe(wheel, log));
    for (const p of probes) wheel.insert(p, 300_000);
    expect(wheel.size).toBe(1000);
    expect(wheel.advance(299_999)).toBe(0);
    expect(wheel.advance(300_000)).toBe(1000);
    expect(log).toEqual(probes);
  });

  test("1000 entries in one level-3 slot fire in deadline order, ties in insertion order", () => {
    const wheel = new TimerWheel();
    const rand = prng(3);
    const log: Probe[] = [];
    const base = 2 * W ** 3;
    const probes = Array.from({ length: 1000 }, () => {
      const p = new Probe(wheel, log);
      wheel.insert(p, base + Math.floor(rand() * 200)); // many ties
      return p;
    });
    for (let i = 0; i < probes.length; i += 3) wheel.remove(probes[i]!);
    const expected = probes
      .filter((_, i) => i % 3 !== 0)
      .map((p, order) => ({ p, d: p.deadline, order }))
      .sort((x, y) => x.d - y.d || x.order - y.order)
      .map((x) => x.p);
    drive(wheel, base + W ** 3);
    expect(log).toEqual(expected);
    for (const p of expected) expect(p.firedAt.length).toBe(1);
  });
});

describe("nextDeadline()", () => {
  test("is -1 when empty, elapsed when something is due", () => {
    const wheel = new TimerWheel(40);
    expect(wheel.nextDeadline()).toBe(-1);
    const p = new Probe(wheel);
    wheel.insert(p, 40);
    expect(wheel.nextDeadline()).toBe(40);
    wheel.remove(p);
    expect(wheel.nextDeadline()).toBe(-1);
  });

  test.each([1, 2, 3])("seed %p: never later than the earliest deadline, exact at level 0, over 3000 random timers", (seed) => {
    const rand = prng(seed);
    const start = Math.floor(rand() * 2 ** 34);
    const wheel = new TimerWheel(start);
    const probes = Array.from({ length: 3000 }, () => {
      const p = new Probe(wheel);
      wheel.insert(p, start + 1 + logDistance(rand, 37));
      return p;
    });
    const deadlines = probes.map((p) => p.deadline);
    const sorted = [...deadlines].sort((a, b) => a - b);
    let next = 0; // index in sorted of the earliest unfired deadline
    while (next < sorted.length) {
      const earliest = sorted[next]!;
      const t = wheel.nextDeadline();
      expect(t).toBeGreaterThanOrEqual(wheel.elapsed);
      expect(t).toBeLessThanOrEqual(earliest);
      if (Math.floor(earliest / 64) === Math.floor(wheel.elapsed / 64)) expect(t).toBe(earliest);
      // Mostly wake exactly at t, as the driver does; sometimes wake early or late.
      const r = rand();
      const now = r < 0.7 ? t : r < 0.85 ? wheel.elapsed + Math.floor((t - wheel.elapsed) * rand()) : t + logDistance(rand, 20);
      wheel.advance(now);
      while (next < sorted.length && sorted[next]! <= now) next++;
      expect(wheel.size).toBe(sorted.length - next);
    }
    for (const [i, p] of probes.entries()) expect(p.firedAt).toEqual([deadlines[i]!]);
  });

  test.each([4, 5, 6])("seed %p: random insert/move/remove/advance agrees with a reference model", (seed) => {
    const rand = prng(seed);
    const wheel = new TimerWheel(Math.floor(rand() * 2 ** 33));
    const live = new Map<Probe, number>(); // armed entry → deadline
    const armedDue = new Set<Probe>(); // armed when already due
    const pool = Array.from({ length: 400 }, () => new Probe(wheel));
    let fired = 0;
    for (let step = 0; step < 6000; step++) {
      const p = pool[Math.floor(rand() * pool.length)]!;
      const r = rand();
      if (r < 0.5) {
        const deadline = wheel.elapsed + logDistance(rand, 38) - (rand() < 0.05 ? 10 : 0);
        wheel.insert(p, deadline);
        live.set(p, deadline);
        if (deadline <= wheel.elapsed) armedDue.add(p);
        else armedDue.delete(p);
      } else if (r < 0.65) {
        wheel.remove(p);
        live.delete(p);
        armedDue.delete(p);
      } else {
        const now = rand() < 0.5 ? Math.max(wheel.nextDeadline(), wheel.elapsed) : wheel.elapsed + logDistance(rand, 30);
        const before = new Map(Array.from(live.keys(), (q) => [q, q.firedAt.length]));
        const n = wheel.advance(now);
        fired += n;
        let expectFired = 0;
        for (const [q, deadline] of live) {
          if (deadline > now) continue;
          expectFired++;
          expect(q.firedAt.length).toBe(before.get(q)! + 1);
          if (!armedDue.has(q)) expect(q.firedAt.at(-1)).toBe(deadline);
          live.delete(q);
          armedDue.delete(q);
        }
        expect(n).toBe(expectFired);
      }
      expect(wheel.size).toBe(live.size);
      let earliest = Infinity;
      for (const d of live.values()) earliest = Math.min(earliest, d);
      const t = wheel.nextDeadline();
      if (live.size === 0) expect(t).toBe(-1);
      else expect(t).toBeLessThanOrEqual(Math.max(earliest, wheel.elapsed));
    }
    expect(fired).toBeGreaterThan(100);
  });
});

describe("size and time bookkeeping", () => {
  test("size follows insert, move, remove, due and fire", () => {
    const wheel = new TimerWheel(10);
    const a = new Probe(wheel);
    const b = new Probe(wheel);
    const steps: [string, () => void, number][] = [
      ["insert a", () => wheel.insert(a, 100), 1],
      ["move a", () => wheel.insert(a, 200), 1],
      ["insert b due", () => wheel.insert(b, 5), 2],
      ["remove a", () => wheel.remove(a), 1],
      ["remove a again", () => wheel.remove(a), 1],
      ["insert a far", () => wheel.insert(a, 2 * W ** 6), 2],
      ["advance fires b", () => wheel.advance(11), 1],
      ["advance fires a", () => wheel.advance(2 * W ** 6), 0],
    ];
    for (const [name, run, size] of steps) {
      run();
      expect({ name, size: wheel.size }).toEqual({ name, size });
    }
  });

  test("advance() moves elapsed forward only and returns how many fired", () => {
    const wheel = new TimerWheel(100);
    expect(wheel.advance(250)).toBe(0);
    expect(wheel.elapsed).toBe(250);
    expect(wheel.advance(200)).toBe(0);
    expect(wheel.elapsed).toBe(250);
    const p = new Probe(wheel);
    wheel.insert(p, 260);
    expect(wheel.advance(255)).toBe(0);
    expect(wheel.advance(300)).toBe(1);
    expect(wheel.elapsed).toBe(300);
  });

  test.each([
    { what: "a fractional deadline", run: () => new TimerWheel().insert(new TimerEntry(), 1.5), message: "deadline 1.5" },
    { what: "a NaN deadline", run: () => new TimerWheel().insert(new TimerEntry(), NaN), message: "deadline NaN" },
    { what: "an infinite deadline", run: () => new TimerWheel().insert(new TimerEntry(), Infinity), message: "deadline Infinity" },
    { what: "a fractional advance", run: () => new TimerWheel().advance(2.5), message: "to 2.5" },
    { what: "a negative start", run: () => new TimerWheel(-1), message: "at -1 ms" },
  ])("$what is a RangeError naming the value", ({ run, message }) => {
    expect(run).toThrow(RangeError);
    expect(run).toThrow(message);
  });
});
