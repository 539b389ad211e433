/**
 * The fd rule for the new fd types — pipes, shared (inherited) fds, a child's pidfd and
 * pipes, the signal pump, stdio bindings, the spawnBlocking eventfd — case by case, on
 * every backend: nothing of a closed or cancelled operation may touch the descriptor's
 * next owner, and nothing leaks (the fd table is compared around every test). Each test
 * reuses the released number on purpose and is named after the hazard it pins.
 */
import { beforeAll, expect, test } from "bun:test";
import * as libc from "../ffi/libc.ts";
import { SYS } from "../ffi/constants.ts";
import * as proc from "../ffi/process.ts";
import { SIGNALS } from "../ffi/signal.ts";
import { Command, PENDING, Runtime, currentRuntime, pipe, signal, sleep, spawnBlocking, startBlockingPool, stderr, type Context } from "../lib/index.ts";
import { NO_BUFS, OP_READ } from "../lib/driver/fd.ts";
import { startFsPool } from "../lib/driver/pool/pool.ts";
import { laneState, startLanes } from "../lib/driver/readiness/shared.ts";
import { pumpFd, startSignals } from "../lib/signal/hub.ts";
import { fdTable, forEachBackend, opened } from "./helpers.ts";

const noop: Context = { waker: { wake() {} } };
const enc = new TextEncoder();

beforeAll(async () => {
  await startFsPool();
  await startLanes(2);
  await startBlockingPool(1);
  startSignals();
  Bun.spawnSync(["true"]);
});

/** A pipe made with libc (a "next owner"): [read end, write end], non-blocking. */
function rawPipe(flags = SYS.O_NONBLOCK | SYS.O_CLOEXEC): [number, number] {
  const fds = new Int32Array(new ArrayBuffer(8));
  expect(libc.pipe2(fds, flags)).toBe(0);
  return [fds[0]!, fds[1]!];
}

/** Moves `fd` onto `number` when `number` is free; returns the fd the victim has. */
function onto(fd: number, number: number): number {
  if (libc.fcntl(number, SYS.F_GETFD, 0) >= 0) return fd; // taken (pinned): the victim stays where it is
  expect(libc.dupCloexec(fd, number)).toBe(number);
  libc.close(fd);
  return number;
}

/** Everything readable on a non-blocking fd now. */
function drain(fd: number): string {
  const buf = new Uint8Array(65536);
  let s = "";
  for (let i = 0; i < 100; i++) {
    const n = libc.read(fd, buf);
    if (n <= 0) break;
    s += new TextDecoder().decode(buf.subarray(0, n));
  }
  return s;
}

forEachBackend("fd lifecycle (processes, pipes, signals)", ({ run, backend }) => {
  test("pipe_read_pending_at_close_never_reads_the_next_owner", () => {
    let got = "";
    run(function* () {
      const [r, w] = pipe();
      const number = r.fd;
      expect(r.read(new Uint8Array(64)).poll(noop)).toBe(PENDING); // in flight (an io_uring op)
      r.close();
      const [vr, vw] = rawPipe();
      const victim = onto(vr, number);
      libc.write(vw, enc.encode("VICTIM"));
      yield* sleep(2); // turns: a stray read would take the bytes now
      got = drain(victim);
      libc.close(victim);
      libc.close(vw);
      w.close();
    });
    expect(got).toBe("VICTIM");
  });

  test("shared_fd_closed_during_a_blocking_read_keeps_its_number_until_the_read_ends", () => {
    let got = "";
    let sameNumber = false;
    run(function* () {
      const [r, w] = rawPipe(SYS.O_CLOEXEC); // blocking, as a shell's pipe
      const io = currentRuntime()!.driver.inherited(libc.dup(r));
      const number = io.fd;
      expect(io.pollOp(noop, OP_READ, new Uint8Array(64), NO_BUFS)).toBe(PENDING);
      // Wait (bounded) until the read is inside its call: on the readiness backends its
      // Worker has claimed the job; on io_uring the op is in the kernel after one turn.
      const job = () => (io as unknown as { readJob?: { running: boolean } | null }).readJob;
      for (let i = 0; i < 2000 && backend !== "uring" && job()?.running !== true; i++) yield* sleep(1);
      yield* sleep(1);
      io.close();
      const [vr, vw] = rawPipe();
      const victim = onto(vr, number);
      // Readiness backends: the Worker still reads the number: it is not free (the victim is elsewhere).
      // io_uring: the read was cancelled in the kernel, the number is free at once.
      sameNumber = victim === number;
      libc.write(vw, enc.encode("VICTIM"));
      libc.write(w, enc.encode("x")); // the blocked read returns, and its Worker closes the fd
      for (let i = 0; i < 1000 && laneState().detachedRunning > 0; i++) yield* sleep(1);
      yield* sleep(2);
      got = drain(victim);
      for (const fd of [victim, vw, r, w]) libc.close(fd);
    });
    expect(got).toBe("VICTIM");
    expect(sameNumber).toBe(backend === "uring");
  });

  test("pidfd_closed_once_after_reap_never_closes_the_next_owner", () => {
    run(function* () {
      const child = new Command("true").spawn();
      yield* child.wait();
      const [vr, vw] = rawPipe(); // may reuse the pidfd's number: it was closed before wait() returned
      yield* sleep(2);
      expect(libc.fcntl(vr, SYS.F_GETFD, 0)).toBeGreaterThanOrEqual(0);
      expect(libc.fcntl(vw, SYS.F_GETFD, 0)).toBeGreaterThanOrEqual(0);
      libc.close(vr);
      libc.close(vw);
    });
  });

  test("child_pipes_of_a_failed_spawn_are_all_closed", () => {
    run(function* () {
      expect(() => new Command("reel-no-such-program").stdin("pipe").stdout("pipe").stderr("pipe").spawn()).toThrow("ENOENT");
    });
  });

  test("killed_child_read_pending_ends_and_its_pipe_is_released", () => {
    run(function* () {
      const child = new Command("sleep").arg("30").stdout("pipe").spawn();
      const read = child.stdout!.read(new Uint8Array(16));
      expect(read.poll(noop)).toBe(PENDING);
      child.kill();
      expect(yield* read).toBe(0);
      yield* child.wait();
      child.stdout!.close();
    });
  });

  test("signal_pump_unbound_with_the_last_stream_never_reads_the_next_owner", () => {
    let got = "";
    run(function* () {
      const s = signal("SIGUSR2");
      expect(s.pollNext(noop)).toBe(PENDING); // the pump is bound now
      const number = pumpFd();
      expect(number).toBeGreaterThanOrEqual(0);
      s.close(); // the last stream: the pump's duplicate is closed
      const [vr, vw] = rawPipe();
      const victim = onto(vr, number);
      libc.write(vw, enc.encode("VICTIM"));
      // A new stream binds a new pump; a signal goes through it, never through the victim.
      const s2 = signal("SIGUSR2");
      expect(s2.pollNext(noop)).toBe(PENDING);
      expect(proc.kill(process.pid, SIGNALS.SIGUSR2!)).toBe(0);
      expect(yield* s2.recv()).toBe("SIGUSR2");
      s2.close();
      got = drain(victim);
      libc.close(victim);
      libc.close(vw);
    });
    expect(got).toBe("VICTIM");
  });

  test("spawnBlocking_eventfd_is_released_when_idle", () => {
    run(function* () {
      expect(yield* spawnBlocking<number>(new URL("./fixtures/blocking_fns.ts", import.meta.url), "add", 1, 2)).toBe(3);
      yield* sleep(1); // its eventfd goes as a microtask once no call is in flight
    });
  });
}, { kernel: "child processes, pipes, signals and the blocking pool" });

test("stdio_binding_closed_with_its_runtime: a handle used in a runtime that closes rebinds in the next", () => {
  const err = stderr();
  const before = fdTable();
  for (const backend of ["epoll", "poll"] as const) {
    const rt = new Runtime({ backend });
    rt.blockOn(err.write(enc.encode(`[stdio binding test: ${backend}]\n`)));
    rt.close(); // closes the handle's duplicate of fd 2
  }
  err.close();
  expect(opened(before, fdTable())).toEqual([]);
  expect(libc.fcntl(2, SYS.F_GETFD, 0)).toBeGreaterThanOrEqual(0);
});


