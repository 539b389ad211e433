// Uniform arguments (issue 11): every combinator and wrapper takes what spawn takes — a
// Future or a generator function — and anything else is a TypeError at the call that
// names the call and what it got (a generator object used to fail later, inside poll).
import { afterAll, describe, expect, test } from "bun:test";
import {
  CancellationToken,
  Runtime,
  andThen,
  join,
  joinAll,
  map,
  race,
  ready,
  select,
  sleep,
  spawn,
  timeout,
  tryJoin,
  tryJoinAll,
  withSignal,
  withToken,
} from "../lib/index.ts";

function* two() {
  yield* sleep(1);
  return 2;
}

describe("uniform arguments", () => {
  const rt = new Runtime();
  afterAll(() => rt.close());

  test("timeout, withToken, withSignal, map and andThen take a generator function as spawn does", () => {
    const got = rt.blockOn(function* () {
      const a = yield* timeout(two, 1000);
      const b = yield* withToken(two, new CancellationToken());
      const c = yield* withSignal(two, new AbortController().signal);
      const d = yield* map(two, (n) => n + 1);
      const e = yield* andThen(two, (n) => function* () {
        return n * 10;
      });
      return [a, b, c, d, e];
    });
    expect(got).toEqual([2, 2, 2, 3, 20]);
  });

  test("join, tryJoin, select, race, joinAll and tryJoinAll take generator functions and futures alike", () => {
    const got = rt.blockOn(function* () {
      const j = yield* join(two, ready(1));
      const t = yield* tryJoin(ready("x"), two);
      const s = yield* select(sleep(50), two);
      const r = yield* race(two, sleep(50));
      const ja = yield* joinAll([two, two]);
      const ta = yield* tryJoinAll([two, ready(5)]);
      return { j, t, s: s.index, r, ja, ta };
    });
    expect(got).toEqual({ j: [2, 1], t: ["x", 2], s: 1, r: 2, ja: [2, 2], ta: [2, 5] });
  });

  test("a generator object is a TypeError at the call, naming the call and what it got", () => {
    const it = two();
    const cases: [string, () => unknown][] = [
      ["timeout()", () => timeout(it as never, 10)],
      ["withToken()", () => withToken(it as never, new CancellationToken())],
      ["withSignal()", () => withSignal(it as never, new AbortController().signal)],
      ["map()", () => map(it as never, (x) => x)],
      ["andThen()", () => andThen(it as never, () => ready(1))],
      ["join() argument 1", () => join(ready(1), it as never)],
      ["tryJoin() argument 0", () => tryJoin(it as never)],
      ["select() argument 0", () => select(it as never)],
      ["race() argument 1", () => race(sleep(1), it as never)],
      ["joinAll() argument 0", () => joinAll([it as never])],
      ["spawn()", () => rt.blockOn(function* () { spawn(it as never); })],
    ];
    for (const [what, call] of cases) {
      let err: unknown = null;
      try {
        call();
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(TypeError);
      expect((err as Error).message).toContain(what);
      expect((err as Error).message).toContain("got a generator object (pass the generator function itself");
    }
  });

  test("other non-futures are named too: numbers, null, plain objects, Promises", () => {
    expect(() => timeout(5 as never, 10)).toThrow("timeout(): Expected a Future or a generator function, got number");
    expect(() => withToken(null as never, new CancellationToken())).toThrow("withToken(): Expected a Future or a generator function, got null");
    expect(() => race({} as never)).toThrow("race() argument 0: Expected a Future or a generator function, got Object");
    expect(() => join(Promise.resolve(1) as never)).toThrow("got Promise");
    expect(() => joinAll(7 as never)).toThrow("joinAll() expects an iterable");
    expect(() => withToken(sleep(1), {} as never)).toThrow("withToken() expects a CancellationToken");
  });
});
