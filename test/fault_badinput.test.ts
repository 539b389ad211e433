// Fault suite, bad input, on every backend: invalid addresses and ports, negative/NaN
// lengths and durations, detached and zero-length buffers (also detached while an op is
// pending), a closed stream or listener, a socket used on the wrong runtime, polling a
// completed or cancelled future, re-entrant blockOn, spawning after shutdown. Each must be
// a clear typed error (the class, the code where there is one, and the bad value named in
// the message), never a crash, a hang or a silent wrong answer; fds are checked around each.
import { expect, test } from "bun:test";
import {
  Barrier,
  FutureStateError,
  LookupError,
  Mutex,
  Notify,
  Runtime,
  RuntimeError,
  Semaphore,
  SysError,
  TcpListener,
  TcpStream,
  blockOn,
  channel,
  gen,
  interval,
  map,
  ready,
  sleep,
  sleepUntil,
  spawn,
  timeout,
  unboundedChannel,
  yieldNow,
  type BaseFuture,
  type Context,
} from "../lib/index.ts";
import { serve } from "../lib/net/serve.ts";
import { defaultRuntimeInstance } from "../lib/executor.ts";
import { forEachBackend, simSkip } from "./helpers.ts";
import { leftovers } from "./fault_util.ts";

const noop: Context = { waker: { wake() {} } };
// The top-level blockOn() below uses the default runtime: make it now, outside the fd checks.
defaultRuntimeInstance();

/** What `f` throws (fails the test if it returns). */
function thrown(f: () => unknown): Error {
  try {
    f();
  } catch (e) {
    return e as Error;
  }
  throw new Error("expected an error, but the call returned");
}

/** What `fut` fails with inside a task (fails the test if it completes). */
function* failsWith(fut: BaseFuture<unknown>): Generator<unknown, Error, unknown> {
  try {
    yield* fut;
  } catch (e) {
    return e as Error;
  }
  throw new Error("expected the future to fail, but it completed");
}

function expectError(e: Error, cls: new (...a: never[]) => Error, pattern: RegExp, code?: string): void {
  expect(e).toBeInstanceOf(cls);
  expect(e.message).toMatch(pattern);
  if (code !== undefined) expect((e as { code?: string }).code).toBe(code);
}

/** Transfers `b`'s ArrayBuffer away, leaving `b` detached. */
function detach(b: Uint8Array): void {
  structuredClone(b.buffer, { transfer: [b.buffer as ArrayBuffer] });
}

function* pair(): Generator<unknown, [TcpStream, TcpStream, TcpListener], unknown> {
  const l = TcpListener.bind({ hostname: "127.0.0.1", port: 0 });
  const c = yield* TcpStream.connect({ hostname: "127.0.0.1", port: l.localAddr.port });
  const [s] = yield* l.accept();
  return [c, s, l];
}

forEachBackend("fault: bad input", ({ run, runtime, backend }) => {
  test("invalid ports are TypeError/RangeError naming the value, for bind and for connect", () => {
    const bad: [unknown, new (...a: never[]) => Error][] = [
      [70000, RangeError], [-1, RangeError], [65536, RangeError], [1.5, TypeError], [NaN, TypeError],
      [Infinity, TypeError], ["80", TypeError], [undefined, TypeError], [null, TypeError],
    ];
    for (const [port, cls] of bad) {
      expectError(thrown(() => TcpListener.bind({ port } as never)), cls, new RegExp(`port.*${String(port)}`));
      const e = run(() => failsWith(TcpStream.connect({ port } as never)));
      expectError(e, cls, new RegExp(`port.*${String(port)}`));
    }
  });

  test("invalid addresses are TypeError naming the host; unusable ones are SysErrors", () => {
    for (const hostname of ["999.1.1.1", "", "::g", "[::1", "::1%zz", "example.invalid", "1.2.3"]) {
      expectError(thrown(() => TcpListener.bind({ hostname, port: 0 })), TypeError, new RegExp(`hostname "${hostname.replace(/[[\]]/g, "\\$&")}"`));
      const e = run(() => failsWith(TcpStream.connect({ hostname, port: 1 })));
      // A host name is looked up (a name under .invalid never exists: RFC 6761); a
      // malformed IP literal is no name and fails at once.
      if (hostname === "example.invalid") expectError(e, LookupError, /ENOTFOUND.*example\.invalid/, "ENOTFOUND");
      else expectError(e, TypeError, /Cannot resolve hostname/);
    }
    expectError(thrown(() => TcpListener.bind({ hostname: 42 as never, port: 0 })), TypeError, /hostname 42/);
    expectError(thrown(() => TcpListener.bind(null as never)), TypeError, /expected \{ hostname, port \}/);
    expectError(thrown(() => TcpListener.bind("127.0.0.1:80" as never)), TypeError, /expected \{ hostname, port \}/);
    // A documentation address (TEST-NET-1) is not on this host: bind fails, typed.
    expectError(thrown(() => TcpListener.bind({ hostname: "192.0.2.1", port: 0 })), SysError, /EADDRNOTAVAIL.*192\.0\.2\.1/, "EADDRNOTAVAIL");
    // A port in use.
    const l = TcpListener.bind({ hostname: "127.0.0.1", port: 0 });
    expectError(thrown(() => TcpListener.bind({ hostname: "127.0.0.1", port: l.localAddr.port })), SysError, /EADDRINUSE/, "EADDRINUSE");
    l.close();
    for (const backlog of [-1, 1.5, NaN]) expectError(thrown(() => TcpListener.bind({ port: 0, backlog })), RangeError, /backlog/);
    // Connecting to port 0 or the unspecified address is refused by the kernel, not a crash.
    for (const hostname of ["127.0.0.1", "0.0.0.0"]) {
      const port = hostname === "0.0.0.0" ? 1 : 0;
      expectError(run(() => failsWith(TcpStream.connect({ hostname, port }))), SysError, /connect failed: ECONNREFUSED/, "ECONNREFUSED");
    }
  });

  test("negative, NaN and infinite lengths, counts and durations are RangeError/TypeError naming the value", () => {
    const cases: [() => unknown, new (...a: never[]) => Error, RegExp][] = [
      [() => sleep(-1), RangeError, /sleep\(\) duration.*-1/],
      [() => sleep(NaN), TypeError, /sleep\(\) duration.*NaN/],
      [() => sleep(Infinity), RangeError, /Infinity/],
      [() => sleep("5" as never), TypeError, /sleep\(\) duration/],
      [() => sleepUntil(NaN), TypeError, /deadline.*NaN/],
      [() => interval(0), RangeError, /period.*0/],
      [() => interval(-5), RangeError, /period.*-5/],
      [() => interval(NaN), TypeError, /period.*NaN/],
      [() => timeout(ready(1), -1), RangeError, /-1/],
      [() => timeout(ready(1), NaN), TypeError, /NaN/],
      [() => timeout(5 as never, 10), TypeError, /timeout\(\): Expected a Future or a generator function, got number/],
      [() => channel(0), RangeError, /capacity.*0/],
      [() => channel(-1), RangeError, /capacity.*-1/],
      [() => channel(NaN), TypeError, /capacity.*NaN/],
      [() => channel(1.5), TypeError, /capacity.*1\.5/],
      [() => new Semaphore(-1), RangeError, /permits.*-1/],
      [() => new Semaphore(NaN), TypeError, /permits.*NaN/],
      [() => new Semaphore(1).acquire(-1), RangeError, /-1/],
      [() => new Semaphore(1).acquire(NaN), TypeError, /NaN/],
      [() => new Semaphore(1).addPermits(NaN), TypeError, /NaN/],
      [() => new Barrier(-1), RangeError, /Barrier size.*-1/],
      [() => new Uint8Array(-1), RangeError, /./], // the platform's own check, for completeness
    ];
    for (const [f, cls, pattern] of cases) expectError(thrown(f), cls, pattern);
    const l = TcpListener.bind({ port: 0 });
    for (const ms of [0, -1, NaN]) expectError(thrown(() => serve(l, function* () {}, { maxBackoffMs: ms })), RangeError, /maxBackoffMs/);
    expectError(thrown(() => serve(l, null as never)), TypeError, /handler must be a function/);
    l.close();
  });

  test("non-Uint8Array and detached buffers are TypeErrors; zero-length buffers complete at once with 0", () => {
    run(function* () {
      const [c, s, l] = yield* pair();
      for (const bad of [new ArrayBuffer(8), new DataView(new ArrayBuffer(8)), new Int16Array(4), "text", null, 42]) {
        expectError(thrown(() => c.read(bad as never)), TypeError, /read\(\) buffer must be a Uint8Array/);
        expectError(thrown(() => c.write(bad as never)), TypeError, /write\(\) buffer must be a Uint8Array/);
        expectError(thrown(() => c.writeAll(bad as never)), TypeError, /writeAll\(\) buffer/);
        expectError(thrown(() => c.readExact(bad as never)), TypeError, /readExact\(\) buffer/);
      }
      const d = new Uint8Array(new ArrayBuffer(8));
      detach(d);
      for (const f of [() => c.read(d), () => c.write(d), () => c.writeAll(d), () => c.readExact(d)]) {
        expectError(thrown(f), TypeError, /detached/);
      }
      expectError(thrown(() => c.pollRead(noop, d)), TypeError, /detached/);
      expectError(thrown(() => c.pollWrite(noop, d)), TypeError, /detached/);
      const empty = new Uint8Array(0);
      expect(yield* c.read(empty)).toBe(0);
      expect(yield* c.write(empty)).toBe(0);
      yield* c.writeAll(empty);
      yield* c.readExact(empty);
      expect(c.pollRead(noop, empty)).toBe(0);
      // The stream is untouched by all of that.
      yield* c.writeAll(new Uint8Array([5]));
      const one = new Uint8Array(1);
      yield* s.readExact(one);
      expect(one[0]).toBe(5);
      c.close();
      s.close();
      l.close();
    });
  });

  test("a buffer detached while its read or writeAll is pending fails the op with TypeError, not a false EOF or a short write", () => {
    run(function* () {
      const [c, s, l] = yield* pair();
      const buf = new Uint8Array(new ArrayBuffer(64));
      const reader = spawn(s.read(buf));
      yield* sleep(0);
      detach(buf);
      yield* c.writeAll(new Uint8Array([1, 2, 3]));
      expectError(((yield* failsWith(reader)) as Error & { cause: Error }).cause, TypeError, /read buffer is detached/);
      // The bytes were not consumed by the failed read: the next read gets them.
      const b = new Uint8Array(3);
      yield* timeout(s.readExact(b), 5000);
      expect([...b]).toEqual([1, 2, 3]);
      const big = new Uint8Array(new ArrayBuffer(32 << 20)); // more than the socket buffers hold
      const writer = spawn(c.writeAll(big));
      yield* sleep(0);
      yield* sleep(1);
      expect(writer.isFinished).toBe(false);
      detach(big);
      const drain = spawn(function* () {
        const b = new Uint8Array(65536);
        while ((yield* s.read(b)) > 0);
      });
      expectError(((yield* failsWith(writer)) as Error & { cause: Error }).cause, TypeError, /write buffer is detached/);
      c.close();
      yield* timeout(drain, 5000);
      s.close();
      l.close();
    });
    expect(leftovers(runtime()).ioWakers).toBe(0);
  });

  test("every operation on a closed stream or listener is SysError EBADF; close is idempotent", () => {
    run(function* () {
      const [c, s, l] = yield* pair();
      c.close();
      c.close();
      const ops: [string, () => BaseFuture<unknown>][] = [
        ["read", () => c.read(new Uint8Array(4))],
        ["write", () => c.write(new Uint8Array(4))],
        ["writeAll", () => c.writeAll(new Uint8Array(4))],
        ["readExact", () => c.readExact(new Uint8Array(4))],
      ];
      for (const [, op] of ops) expectError(yield* failsWith(op()), SysError, /EBADF.*the socket was closed/, "EBADF");
      for (const f of [() => c.shutdown("write"), () => c.setNoDelay(true), () => c.localAddr, () => c.peerAddr, () => c.pollRead(noop, new Uint8Array(1))]) {
        expectError(thrown(f), SysError, /EBADF/, "EBADF");
      }
      expect(c.fd).toBe(-1);
      l.close();
      l.close();
      expectError(yield* failsWith(l.accept()), SysError, /EBADF/, "EBADF");
      expectError(thrown(() => l.localAddr), SysError, /EBADF/, "EBADF");
      expect(yield* serve(l, function* () {})).toBe(undefined); // serve() on a closed listener just ends
      s.close();
      // A pending op whose stream is closed under it fails with EBADF (no hang, no waker left).
      const [c2, s2, l2] = yield* pair();
      const w = spawn(s2.readExact(new Uint8Array(10)));
      yield* sleep(0);
      s2.close();
      expectError(((yield* failsWith(w)) as Error & { cause: Error }).cause, SysError, /EBADF/, "EBADF");
      c2.close();
      l2.close();
    });
    expect(leftovers(runtime()).ioWakers).toBe(0);
  });

  // Its clean-up closes a socket that was never polled outside any runtime: net/ then calls the
  // kernel's close(), which a simulated fd number is not (test/sim_fault.test.ts checks EFOREIGN on sim).
  test("a socket used on a runtime other than its own (even a closed one) fails with RuntimeError EFOREIGN, not a hang", () => {
    const other = new Runtime({ backend });
    const [c, s, l] = other.blockOn(pair);
    other.close();
    for (const op of [() => c.read(new Uint8Array(4)), () => c.write(new Uint8Array(4)), () => l.accept()]) {
      const e = run(() => failsWith(op()));
      expectError(e, RuntimeError, /belongs to another reel runtime/, "EFOREIGN");
    }
    c.close();
    s.close();
    l.close();
  });

  test("polling a completed, failed or cancelled future is FutureStateError, for every kind", () => {
    run(function* () {
      const [c, s, l] = yield* pair();
      const [tx, rx] = unboundedChannel<number>();
      const m = new Mutex(0);
      const n = new Notify();
      const futures: [string, BaseFuture<unknown>][] = [
        ["write", c.write(new Uint8Array([1]))],
        ["read", s.read(new Uint8Array(1))],
        ["writeAll", c.writeAll(new Uint8Array([2, 3]))],
        ["readExact", s.readExact(new Uint8Array(2))],
        ["sleep", sleep(0)],
        ["timeout", timeout(sleep(0), 1000)],
        ["ready", ready(1)],
        ["map", map(ready(1), (x) => x + 1)],
        ["gen", gen(function* () { return 1; })],
        ["join handle", spawn(function* () { return 1; })],
        ["recv", (tx.send(1), rx.recv())],
        ["lock", m.lock()],
        ["notified", (n.notifyOne(), n.notified())],
        ["yieldNow", yieldNow()],
      ];
      for (const [name, f] of futures) {
        const v = yield* f;
        if (name === "lock") (v as { release(): void }).release();
        let e: Error;
        try {
          e = thrown(() => f.poll(noop));
        } catch {
          throw new Error(`${name}: polling it after completion returned instead of throwing FutureStateError`);
        }
        expectError(e, FutureStateError, /polled after completion/);
      }
      // Failed futures are finished too.
      const refused = TcpStream.connect({ hostname: "127.0.0.1", port: 1 });
      yield* failsWith(refused);
      expectError(thrown(() => refused.poll(noop)), FutureStateError, /connect\(\) future polled after completion/);
      // Cancelled ones as well (cancel is JS's drop).
      for (const f of [s.read(new Uint8Array(1)), l.accept(), sleep(1000)]) {
        expect(f.poll(noop)).not.toBe(undefined);
        f.cancel();
        expectError(thrown(() => f.poll(noop)), FutureStateError, /polled after completion/);
      }
      c.close();
      s.close();
      l.close();
    });
    expect(leftovers(runtime()).ioWakers).toBe(0);
  });

  test("re-entrant blockOn, runTicks and close from inside a runtime are RuntimeErrors; nothing is left broken", () => {
    const rt = runtime();
    const other = new Runtime({ backend });
    run(function* () {
      expectError(thrown(() => rt.blockOn(function* () {})), RuntimeError, /blockOn\(\) cannot be called from inside/, "EREENTRANT");
      expectError(thrown(() => other.blockOn(function* () {})), RuntimeError, /blockOn\(\) cannot be called from inside/, "EREENTRANT");
      expectError(thrown(() => blockOn(function* () {})), RuntimeError, /cannot be called from inside/, "EREENTRANT");
      expectError(thrown(() => rt.runTicks(1)), RuntimeError, /runTicks\(\)/, "EREENTRANT");
      expectError(thrown(() => rt.close()), RuntimeError, /Cannot close a runtime from inside/, "EBUSY");
      yield* sleep(1); // the runtime still runs
    });
    expect(run(function* () { return 7; })).toBe(7);
    other.close();
  });

  test("spawning or running after shutdown, or outside any runtime, is a RuntimeError with a code", () => {
    const rt = new Runtime({ backend });
    expect(rt.blockOn(function* () { return 1; })).toBe(1);
    rt.close();
    rt.close(); // idempotent
    expectError(thrown(() => rt.spawn(function* () {})), RuntimeError, /Cannot spawn: the runtime is closed/, "ECLOSED");
    expectError(thrown(() => rt.blockOn(function* () {})), RuntimeError, /Cannot blockOn: the runtime is closed/, "ECLOSED");
    expectError(thrown(() => rt.runTicks(1)), RuntimeError, /closed/, "ECLOSED");
    expectError(thrown(() => spawn(function* () {})), RuntimeError, /must be called inside a reel runtime/, "ENORUNTIME");
    expectError(thrown(() => sleep(1).poll(noop)), RuntimeError, /No reel runtime is running/, "ENORUNTIME");
    expectError(thrown(() => new Runtime({ backend: "nope" as never })), RangeError, /nope/);
  });

  test("things that are not futures are TypeErrors naming what they are", () => {
    run(function* () {
      expectError(thrown(() => spawn(42 as never)), TypeError, /Expected a Future or a generator function, got number/);
      expectError(thrown(() => gen(5 as never)), TypeError, /gen\(\) expects a generator function, got number/);
      expectError(yield* failsWith(gen(function* () { yield 42; })), TypeError, /yielded number/);
      expectError(yield* failsWith(gen(function* () { yield Promise.resolve(1); })), TypeError, /yielded Promise/);
    });
    expectError(thrown(() => run((() => 5) as never)), TypeError, /function\*.*returned number/);
    expectError(thrown(() => run((async () => 5) as never)), TypeError, /function\*.*returned Promise/);
    expectError(thrown(() => run(null as never)), TypeError, /got null/);
  });
});
