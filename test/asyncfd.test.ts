/**
 * AsyncFd on every backend: readiness of fds reel did not make (eventfd, pipes), the
 * readiness-clearing rule, intoInner() giving the fd back open, close(), and bad input.
 */
import { expect, test } from "bun:test";
import * as libc from "../ffi/libc.ts";
import * as ep from "../ffi/epoll.ts";
import { SYS } from "../ffi/constants.ts";
import { AsyncFd, PENDING, SysError, select, sleep, spawn, type Context } from "../lib/index.ts";
import { forEachBackend, kernelTest } from "./helpers.ts";

const noop: Context = { waker: { wake() {} } };
const one = new Uint8Array(new ArrayBuffer(8));
one[0] = 1;

function pipe(flags = SYS.O_NONBLOCK | SYS.O_CLOEXEC): [number, number] {
  const p = new Int32Array(2);
  if (libc.pipe2(p, flags) < 0) throw new Error("pipe2 failed");
  return [p[0]!, p[1]!];
}

forEachBackend("AsyncFd", ({ run, backend }) => {
  const realFd = kernelTest(backend, "AsyncFd over real fds (an eventfd, pipes)");
  realFd("an eventfd: readable() waits for a write from another task; tryIo reads it, then EAGAIN clears readiness", () => {
    run(function* () {
      const efd = ep.eventfd(0, ep.EFD_NONBLOCK | ep.EFD_CLOEXEC);
      const afd = new AsyncFd(efd);
      const r = afd.readable();
      expect(r.poll(noop)).toBe(PENDING);
      r.cancel();
      spawn(function* () {
        yield* sleep(2);
        libc.write(efd, one);
      });
      const buf = new Uint8Array(8);
      const g = yield* afd.readable();
      expect(g.isClosed).toBe(false);
      expect(g.tryIo((fd) => libc.read(fd, buf))).toBe(8);
      expect(buf[0]).toBe(1);
      expect(g.tryIo((fd) => libc.read(fd, buf))).toBeNull(); // EAGAIN: cleared
      // Cleared: the next readable() waits for a new event.
      expect((yield* select(afd.readable(), sleep(10))).index).toBe(1);
      libc.write(efd, one);
      const g2 = yield* afd.readable();
      expect(g2.tryIo((fd) => libc.read(fd, buf))).toBe(8);
      afd.close();
      expect(afd.fd).toBe(-1);
    });
  });

  realFd("readiness is kept until EAGAIN: readable() again without clearing returns at once", () => {
    run(function* () {
      const [r, w] = pipe();
      const afd = new AsyncFd(r);
      libc.write(w, new Uint8Array(10));
      yield* afd.readable();
      const again = afd.readable();
      expect(again.poll(noop)).not.toBe(PENDING);
      afd.close();
      libc.close(w);
    });
  });

  realFd("clearReady() does not lose an event that came after readiness was observed", () => {
    run(function* () {
      const [r, w] = pipe();
      const afd = new AsyncFd(r);
      libc.write(w, Uint8Array.of(1));
      const g = yield* afd.readable();
      libc.read(r, new Uint8Array(8)); // drained…
      libc.write(w, Uint8Array.of(2)); // …and a new byte came
      yield* sleep(1); // its event is delivered (a new tick)
      g.clearReady(); // stale: must not clear the newer readiness
      const g2 = yield* select(afd.readable(), sleep(50));
      expect(g2.index).toBe(0);
      afd.close();
      libc.close(w);
    });
  });

  realFd("writable(): a full pipe becomes writable when the reader drains it; the far end closing is reported", () => {
    run(function* () {
      const [r, w] = pipe();
      const afd = new AsyncFd(w);
      const chunk = new Uint8Array(65536);
      const g = yield* afd.writable();
      for (let i = 0; i < 100; i++) if (g.tryIo((fd) => libc.write(fd, chunk)) === null) break;
      expect((yield* select(afd.writable(), sleep(10))).index).toBe(1); // full
      const drain = new Uint8Array(65536);
      while (libc.read(r, drain) > 0);
      yield* afd.writable();
      libc.close(r);
      const g3 = yield* afd.writable();
      const e = (() => {
        try {
          g3.tryIo((fd) => libc.write(fd, chunk));
        } catch (err) {
          return err as SysError;
        }
        return null;
      })();
      expect(e?.code).toBe("EPIPE");
      afd.close();
    });
  });

  realFd("intoInner() gives the fd back open and deregistered: it still works, and a new AsyncFd can take it", () => {
    run(function* () {
      const [r, w] = pipe();
      const afd = new AsyncFd(r);
      const pending = afd.readable();
      expect(pending.poll(noop)).toBe(PENDING);
      const fd = afd.intoInner();
      expect(fd).toBe(r);
      expect(afd.fd).toBe(-1);
      expect(() => pending.poll(noop)).toThrow(/closed/); // the wait fails with EBADF
      expect(() => afd.intoInner()).toThrow(SysError);
      libc.write(w, Uint8Array.of(7));
      const again = new AsyncFd(fd); // registering it again works: reel let go of it
      const g = yield* again.readable();
      const buf = new Uint8Array(4);
      expect(g.tryIo((f) => libc.read(f, buf))).toBe(1);
      expect(buf[0]).toBe(7);
      libc.close(again.intoInner());
      libc.close(w);
    });
  });

  realFd("close() fails a pending wait with EBADF", () => {
    run(function* () {
      const [r, w] = pipe();
      const afd = new AsyncFd(r);
      const h = spawn(afd.readable());
      yield* sleep(1);
      afd.close();
      let err: unknown;
      try {
        yield* h;
      } catch (e) {
        err = (e as { cause?: unknown }).cause ?? e;
      }
      expect((err as SysError).code).toBe("EBADF");
      afd.close(); // idempotent
      libc.close(w);
    });
  });

  test("bad input: a blocking fd, a closed fd, a non-integer", () => {
    const [r, w] = pipe(SYS.O_CLOEXEC); // blocking
    expect(() => new AsyncFd(r)).toThrow(/blocking mode/);
    libc.close(r);
    libc.close(w);
    expect(() => new AsyncFd(r)).toThrow(SysError); // closed: EBADF from fcntl
    expect(() => new AsyncFd(-1)).toThrow(TypeError);
    expect(() => new AsyncFd(1.5)).toThrow(TypeError);
  });
});
