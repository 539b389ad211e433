/**
 * stdin/stdout/stderr and shared (inherited) fds, on every backend:
 * - examples/cat.ts run as a child with its input from a pipe, a file and a terminal (a
 *   pty made by util-linux's `script`), output compared byte for byte, and the shared
 *   pipe or terminal checked afterwards: O_NONBLOCK was never set on it;
 * - `driver.inherited(fd)` in-process on a blocking pipe: reads, writes, a cancelled read
 *   loses nothing, close() while a read waits returns at once and releases the fd once
 *   the read ends, and the fd's flags are never touched;
 * - stdout()/stderr() handles write through a duplicate and never close fd 1/2.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as libc from "../ffi/libc.ts";
import { SYS } from "../ffi/constants.ts";
import { PENDING, PipeReader, currentRuntime, pollFn, sleep, spawn, stderr, stdout, type Context } from "../lib/index.ts";
import { DIR_READ, NO_BUFS, OP_READ, OP_WRITE, type IoFd } from "../lib/driver/fd.ts";
import { startFsPool } from "../lib/driver/pool/pool.ts";
import { startLanes } from "../lib/driver/readiness/shared.ts";
import { fdTable, forEachBackend, kernelTest, testBackends } from "./helpers.ts";

const ROOT = join(import.meta.dir, "..");
const CAT = join(ROOT, "examples/cat.ts");
const NONBLOCK = join(ROOT, "test/fixtures/nonblock.ts");
let dir = "";

beforeAll(async () => {
  await startFsPool();
  await startLanes(2); // the shared-fd Workers (readiness backends), started before any fd check
  dir = mkdtempSync(join(tmpdir(), "reel-stdio-"));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A blocking pipe (as a shell makes one): [read end, write end]. */
function blockingPipe(): [number, number] {
  const fds = new Int32Array(new ArrayBuffer(8));
  expect(libc.pipe2(fds, SYS.O_CLOEXEC)).toBe(0);
  return [fds[0]!, fds[1]!];
}

function nonblocking(fd: number): boolean {
  return (libc.fcntl(fd, SYS.F_GETFL, 0) & SYS.O_NONBLOCK) !== 0;
}

/** Random-ish bytes (deterministic). */
function bytes(n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n);
  let x = seed;
  for (let i = 0; i < n; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    out[i] = x >>> 24;
  }
  return out;
}

for (const backend of testBackends()) {
  const env = { ...process.env, REEL_BACKEND: backend };
  const realStdio = kernelTest(backend, "cat.ts copies the process's real standard input and output");

  realStdio(`cat.ts [${backend}]: input from a pipe (1 MiB), output to a pipe; the shared pipe stays blocking`, () => {
    const data = bytes(1024 * 1024, 1);
    const r = Bun.spawnSync(["bun", CAT], { stdin: data, env });
    expect(r.exitCode).toBe(0);
    expect(Buffer.compare(r.stdout, data)).toBe(0);
    // A pipe the test made and keeps a copy of: after cat, its flags are unchanged.
    const [rd, wr] = blockingPipe();
    expect(libc.write(wr, new TextEncoder().encode("through the shared pipe\n"))).toBe(24);
    libc.close(wr);
    const r2 = Bun.spawnSync(["bun", CAT], { stdin: rd, env });
    expect(r2.stdout.toString()).toBe("through the shared pipe\n");
    expect(nonblocking(rd)).toBe(false);
    libc.close(rd);
  });

  realStdio(`cat.ts [${backend}]: input from a file, output to a file`, () => {
    const data = bytes(3 * 1024 * 1024 + 17, 2);
    const inPath = join(dir, `${backend}-in`);
    const outPath = join(dir, `${backend}-out`);
    writeFileSync(inPath, data);
    const r = Bun.spawnSync(["sh", "-c", `bun "${CAT}" < "${inPath}" > "${outPath}"`], { env });
    expect(r.exitCode).toBe(0);
    expect(Buffer.compare(readFileSync(outPath), data)).toBe(0);
  });

  realStdio(`cat.ts [${backend}]: input from a terminal (a pty); the terminal is left blocking`, () => {
    // script(1) runs the command on a fresh pty and forwards its own stdin into it: two
    // lines, then ^D (end of input on a terminal). The pty echoes the input, cat copies it,
    // and the fixture then reports whether the terminal's fd 0 was left non-blocking.
    const cmd = `bun "${CAT}"; bun "${NONBLOCK}"`;
    const r = Bun.spawnSync(["script", "-qec", cmd, "/dev/null"], { stdin: new TextEncoder().encode("line one\nline two\n\x04"), env, timeout: 30_000 });
    expect(r.exitCode).toBe(0);
    expect(r.stdout.toString()).toBe("line one\r\nline two\r\nline one\r\nline two\r\n0\r\n");
  });
}

forEachBackend("inherited fds", ({ run, backend }) => {
  const noop: Context = { waker: { wake() {} } };
  const enc = new TextEncoder();

  test("reads a blocking pipe without making it non-blocking", () => {
    const [rd, wr] = blockingPipe();
    const got = run(function* () {
      const io = currentRuntime()!.driver.inherited(libc.dup(rd));
      try {
        libc.write(wr, enc.encode("hello"));
        const buf = new Uint8Array(16);
        const n = yield* ioRead(io, buf);
        return new TextDecoder().decode(buf.subarray(0, n));
      } finally {
        io.close();
      }
    });
    expect(got).toBe("hello");
    expect(nonblocking(rd)).toBe(false);
    libc.close(rd);
    libc.close(wr);
  });

  test("a cancelled read loses no byte: the next read returns it", () => {
    const [rd, wr] = blockingPipe();
    const got = run(function* () {
      const io = currentRuntime()!.driver.inherited(libc.dup(rd));
      try {
        const buf = new Uint8Array(16);
        const w = { wake() {} };
        expect(io.pollOp({ waker: w }, OP_READ, buf, NO_BUFS)).toBe(PENDING);
        io.dropWaker(DIR_READ, w); // the read's future was cancelled
        libc.write(wr, enc.encode("kept"));
        const out = new Uint8Array(16);
        const n = yield* ioRead(io, out);
        return new TextDecoder().decode(out.subarray(0, n));
      } finally {
        io.close();
      }
    });
    expect(got).toBe("kept");
    libc.close(rd);
    libc.close(wr);
  });

  test("close() while a read waits returns at once; the fd is released once the read ends", () => {
    const [rd, wr] = blockingPipe();
    // Watched by number and target, not by a count: Bun's own threads open and close fds
    // at any moment, so the process's fd count may move under the test either way.
    const dupFd = libc.dup(rd);
    const target = fdTable().get(String(dupFd));
    expect(target).toBeDefined();
    const held = () => fdTable().get(String(dupFd)) === target;
    try {
      run(function* () {
        const io = currentRuntime()!.driver.inherited(dupFd);
        expect(io.pollOp(noop, OP_READ, new Uint8Array(8), NO_BUFS)).toBe(PENDING);
        yield* sleep(2); // the read is inside its call (a Worker's read(2), or the kernel's)
        io.close();
        expect(io.fd).toBe(-1);
        expect(() => io.pollOp(noop, OP_READ, new Uint8Array(8), NO_BUFS)).toThrow("EBADF");
        libc.write(wr, enc.encode("x")); // the read returns; its Worker (or the ring) releases the fd
        for (let i = 0; i < 1000 && held(); i++) yield* sleep(1);
      });
      expect(held()).toBe(false);
    } finally {
      libc.close(rd);
      libc.close(wr);
    }
  });

  test("writes a blocking pipe (1 MiB, against a slower reader)", () => {
    const [rd, wr] = blockingPipe();
    expect(libc.fcntl(rd, SYS.F_SETFL, SYS.O_NONBLOCK)).toBe(0); // the reader's own open file: fine
    const data = bytes(1024 * 1024, 3);
    const got = run(function* () {
      const io = currentRuntime()!.driver.inherited(libc.dup(wr));
      const reader = PipeReader.fromFd(rd);
      // The reader is its own task: a blocking write waits until the pipe has room.
      const reading = spawn(function* () {
        const out = new Uint8Array(data.length);
        for (let off = 0; off < data.length; ) off += yield* reader.read(out.subarray(off, off + 50_000));
        return out;
      });
      try {
        for (let sent = 0; sent < data.length; ) sent += yield* ioWrite(io, data.subarray(sent, sent + 100_000));
        return yield* reading;
      } finally {
        io.close();
        reader.close();
      }
    });
    expect(Buffer.compare(got, data)).toBe(0);
    expect(nonblocking(wr)).toBe(false);
    libc.close(wr);
  });

  test("stdout() and stderr() write through a duplicate; close() leaves fds 1 and 2 open", () => {
    run(function* () {
      const out = stdout();
      const err = stderr();
      yield* out.writeAll(enc.encode(""));
      yield* err.writeAll(enc.encode(`[stdio test ${backend}: a line on stderr]\n`));
      out.close();
      err.close();
      err.close();
      expect(() => err.write(new Uint8Array(1)).poll(noop)).toThrow("EBADF");
    });
    expect(libc.fcntl(1, SYS.F_GETFD, 0)).toBeGreaterThanOrEqual(0);
    expect(libc.fcntl(2, SYS.F_GETFD, 0)).toBeGreaterThanOrEqual(0);
  });
}, { kernel: "the process's own standard input and output, real pipes" });

/** One read through an IoFd, as a generator (the ops a stream future makes). */
function* ioRead(io: IoFd, buf: Uint8Array): Generator<unknown, number, unknown> {
  return yield* pollIo(io, OP_READ, buf);
}

function* ioWrite(io: IoFd, buf: Uint8Array): Generator<unknown, number, unknown> {
  return yield* pollIo(io, OP_WRITE, buf);
}

/** An IoFd op as a future. */
function pollIo(io: IoFd, op: typeof OP_READ | typeof OP_WRITE, buf: Uint8Array) {
  return pollFn((cx) => io.pollOp(cx, op, buf, NO_BUFS));
}
