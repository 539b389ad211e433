/**
 * io_uring ring mechanics, on both setup paths (liburing.so.2 and the raw syscalls):
 * negotiation and probe, batching (one io_uring_enter per tick), SQ overflow, linked
 * chains that land in order, link timeouts, kernel timeouts, and no leaked ops/buffers.
 */
import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as U from "../ffi/uring.ts";
import * as libc from "../ffi/libc.ts";
import { SYS } from "../ffi/constants.ts";
import { Runtime, SysError, spawn } from "../lib/index.ts";
import { K_PLAIN, ST_DONE, UringDriver, type UringOp } from "../lib/driver/uring/driver.ts";
import { linked, nop, uringTimeout, type OpSpec } from "../lib/driver/uring/ops.ts";
import { writeSpec, readSpec } from "../lib/driver/uring/files.ts";
import type { RingPath } from "../lib/driver/uring/ring.ts";
import { fdCount } from "./helpers.ts";

const PATHS: RingPath[] = ["liburing", "raw"];

/** A Runtime on the uring backend set up through `path`. */
function uringRuntime(path: RingPath): Runtime {
  const prev = process.env.REEL_URING;
  process.env.REEL_URING = path;
  try {
    return new Runtime({ backend: "uring" });
  } finally {
    if (prev === undefined) delete process.env.REEL_URING;
    else process.env.REEL_URING = prev;
  }
}

/** Counts io_uring_enter calls made through the ring's one enter per turn. */
function countEnters(d: UringDriver): { calls: number } {
  const counter = { calls: 0 };
  const ring = d.ring as unknown as { submitAndWait(ms: number): number };
  const orig = ring.submitAndWait.bind(ring);
  ring.submitAndWait = (ms: number) => {
    counter.calls++;
    return orig(ms);
  };
  return counter;
}

for (const path of PATHS) {
  describe(`io_uring ring [${path}]`, () => {
    let dir = "";
    let fds = 0;
    beforeEach(() => {
      dir = mkdtempSync(join(tmpdir(), "reel-uring-"));
      fds = fdCount();
    });
    afterEach(() => {
      rmSync(dir, { recursive: true, force: true });
      expect(fdCount()).toBe(fds);
    });

    test("setup negotiates SINGLE_ISSUER + DEFER_TASKRUN and the probe lists every op reel submits", () => {
      const d = new UringDriver({ path });
      try {
        expect(d.path).toBe(path);
        expect(d.caps.deferTaskrun).toBe(true);
        expect(d.ring.flags & U.SETUP_SINGLE_ISSUER).toBe(U.SETUP_SINGLE_ISSUER);
        expect(d.ring.features & U.FEAT_EXT_ARG).toBe(U.FEAT_EXT_ARG);
        for (const op of [U.OP_NOP, U.OP_READ, U.OP_WRITE, U.OP_READV, U.OP_WRITEV, U.OP_ACCEPT, U.OP_CONNECT, U.OP_RECV, U.OP_SEND, U.OP_CLOSE, U.OP_SHUTDOWN, U.OP_OPENAT, U.OP_STATX, U.OP_FSYNC, U.OP_TIMEOUT, U.OP_LINK_TIMEOUT, U.OP_ASYNC_CANCEL, U.OP_POLL_ADD]) {
          expect(d.caps.probe[op]).toBe(1);
        }
        expect(d.caps.multishotAccept).toBe(true);
      } finally {
        d.close();
      }
    });

    test("a provided buffer ring registers on this path (multishot recv on) and its group id cannot be registered twice", () => {
      const d = new UringDriver({ path });
      try {
        if (process.env.REEL_URING_PBUF === "0") {
          expect(d.pbuf).toBeNull(); // forced off: reads stay single-shot
          expect(d.caps.multishotRecv).toBe(false);
          return;
        }
        expect(d.pbuf).not.toBeNull();
        expect(d.caps.multishotRecv).toBe(true);
        expect(d.pbuf!.available).toBe(d.pbuf!.count);
        const spare = U.mmap(4096, U.PROT_READ | U.PROT_WRITE, U.MAP_PRIVATE | U.MAP_ANONYMOUS, -1, 0);
        expect(spare).toBeGreaterThan(0);
        try {
          expect(d.ring.registerBufRing(spare, 4, d.pbuf!.bgid)).toBe(-17); // EEXIST: the group is taken
          expect(d.ring.registerBufRing(spare, 4, d.pbuf!.bgid + 1)).toBe(0); // the ABI is right on this path
          expect(d.ring.unregisterBufRing(d.pbuf!.bgid + 1)).toBe(0);
        } finally {
          U.munmap(spare, 4096);
        }
      } finally {
        d.close();
      }
    });

    test("32 NOPs written in one tick complete after a single io_uring_enter", () => {
      const d = new UringDriver({ path });
      try {
        const enters = countEnters(d);
        const ops: UringOp[] = [];
        for (let i = 0; i < 32; i++) {
          const op = d.op(K_PLAIN, null);
          d.sqe(op, U.OP_NOP, -1, 0, 0, 0);
          ops.push(op);
        }
        expect(d.ring.pending).toBe(32);
        d.turn(-1);
        expect(enters.calls).toBe(1);
        expect(ops.every((o) => o.state === ST_DONE && o.res === 0)).toBe(true);
        for (const o of ops) d.release(o);
        expect(d.inflight).toBe(0);
      } finally {
        d.close();
      }
    });

    test("1000 NOPs in one tick overflow the 256-entry SQ (mid-tick flushes) and all still complete", () => {
      const d = new UringDriver({ path });
      try {
        const ops: UringOp[] = [];
        for (let i = 0; i < 1000; i++) {
          const op = d.op(K_PLAIN, null);
          d.sqe(op, U.OP_NOP, -1, 0, 0, 0);
          ops.push(op);
        }
        for (let i = 0; i < 100 && d.inflight > 0; i++) d.turn(-1);
        expect(ops.every((o) => o.state === ST_DONE && o.res === 0)).toBe(true);
        for (const o of ops) d.release(o);
        expect(d.opsInUse).toBe(0); // nothing of its own stays armed: the readiness bridge arms only for registered fds
      } finally {
        d.close();
      }
    });

    test("a linked pair of writes to the same offset lands in order, 200 times", () => {
      const rt = uringRuntime(path);
      const file = join(dir, "linked");
      const fd = openSync(file, "w+");
      try {
        const enc = new TextEncoder();
        rt.blockOn(function* () {
          const d = rt.driver as UringDriver;
          for (let i = 0; i < 200; i++) {
            const [a, b] = linked([writeSpec(d.pool, fd, enc.encode(`AAAA${i}`), 0), writeSpec(d.pool, fd, enc.encode("BB"), 0)]);
            yield* a!;
            yield* b!;
          }
        });
        expect(readFileSync(file, "utf8")).toBe("BBAA199");
      } finally {
        closeSync(fd);
        rt.close();
      }
    });

    test("a linked chain at the current file position appends in order; a failed link cancels the rest", () => {
      const rt = uringRuntime(path);
      const file = join(dir, "append");
      const fd = openSync(file, "w+");
      try {
        const enc = new TextEncoder();
        rt.blockOn(function* () {
          const d = rt.driver as UringDriver;
          const parts = ["one ", "two ", "three"].map((s) => writeSpec(d.pool, fd, enc.encode(s), -1));
          for (const f of linked(parts)) yield* f;
          // A write to a bad fd fails, and the write linked after it never runs.
          const [bad, after] = linked([writeSpec(d.pool, 1_000_000, enc.encode("x"), 0), writeSpec(d.pool, fd, enc.encode("NEVER"), 0)]);
          const errs: string[] = [];
          for (const f of [bad!, after!]) {
            try {
              yield* f;
            } catch (e) {
              errs.push((e as SysError).code);
            }
          }
          expect(errs).toEqual(["EBADF", "ECANCELED"]);
        });
        expect(readFileSync(file, "utf8")).toBe("one two three");
      } finally {
        closeSync(fd);
        rt.close();
      }
    });

    test("a link timeout cancels a recv that never completes, and its buffer comes back", () => {
      const rt = uringRuntime(path);
      const pair = new Int32Array(2);
      expect(libc.socketpair(SYS.AF_UNIX, SYS.SOCK_STREAM | SYS.SOCK_CLOEXEC, 0, pair)).toBe(0);
      try {
        const code = rt.blockOn(function* () {
          const d = rt.driver as UringDriver;
          const spec: OpSpec = { ...readSpec(d.pool, pair[0]!, 64, 0), opcode: U.OP_RECV, syscall: "recv" };
          const [recv] = linked([spec], [], 20);
          try {
            yield* recv!;
            return "completed";
          } catch (e) {
            return (e as SysError).code;
          }
        });
        expect(code).toBe("ECANCELED");
        const d = rt.driver as UringDriver;
        expect(d.pool.outstanding).toBe(0);
        expect(d.inflight).toBe(0);
      } finally {
        libc.close(pair[0]!);
        libc.close(pair[1]!);
        rt.close();
      }
    });

    test("a kernel timeout op resolves no earlier than asked while other tasks run", () => {
      const rt = uringRuntime(path);
      try {
        const [elapsed, ticks] = rt.blockOn(function* () {
          let ticks = 0;
          const other = spawn(function* () {
            for (let i = 0; i < 3; i++) {
              yield* nop();
              ticks++;
            }
          });
          const t0 = performance.now();
          yield* uringTimeout(15);
          yield* other;
          return [performance.now() - t0, ticks];
        });
        expect(elapsed).toBeGreaterThanOrEqual(14);
        expect(ticks).toBe(3);
      } finally {
        rt.close();
      }
    });
  });
}
