/**
 * reel/fs, completed: the path operations (readDir, mkdir, remove, removeDir,
 * removeDirAll, rename, metadata, symlinkMetadata, copyFile, symlink, readLink,
 * canonicalize, truncate), positional readAt/writeAt and setLen, errors naming the path,
 * and the ordering guarantee — two positional writes to one range issued back to back
 * land in issue order — on every backend (ring ops and the pool on uring, the pool on
 * epoll/poll/kqueue).
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { closeSync, existsSync, lstatSync, mkdirSync, mkdtempSync, openSync, readFileSync, readlinkSync, realpathSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PENDING, SysError, join as joinFuts, sleep, type BaseFuture } from "../lib/index.ts";
import * as libc from "../ffi/libc.ts";
import { SYS } from "../ffi/constants.ts";
import * as fs from "../lib/fs/index.ts";
import { UringDriver } from "../lib/driver/uring/driver.ts";
import * as U from "../ffi/uring.ts";
import { forEachBackend } from "./helpers.ts";
import { pattern } from "./fault_util.ts";

const O_RDWR = 2;

/** A named pipe at `path`. */
function mkfifo(path: string): void {
  const r = Bun.spawnSync(["mkfifo", path]);
  if (r.exitCode !== 0) throw new Error(`mkfifo ${path} failed`);
}

/** Fills a non-blocking pipe fd until not one more byte fits: how many bytes went in. */
function fillPipe(fd: number): number {
  let total = 0;
  for (const size of [65536, 4096, 1]) {
    const chunk = new Uint8Array(size);
    for (let i = 0; i < 100_000; i++) {
      const n = libc.write(fd, chunk);
      if (n < 0) break;
      total += n;
    }
  }
  return total;
}

/** What one read of a non-blocking fd returns now (nothing when empty). */
function drainOnce(fd: number): number[] {
  const buf = new Uint8Array(65536);
  const n = libc.read(fd, buf);
  return n > 0 ? [...buf.subarray(0, n)] : [];
}

let dir = "";
beforeAll(async () => {
  await fs.startFsPool();
  Bun.spawnSync(["true"]); // Bun's own subprocess fds, made once before any fd check
  dir = mkdtempSync(join(tmpdir(), "reel-fsp-"));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** The SysError a future fails with (its code and message), or null. */
function* failure(fut: BaseFuture<unknown>): Generator<unknown, { code: string; message: string } | null, unknown> {
  try {
    yield* fut;
    return null;
  } catch (e) {
    if (!(e instanceof SysError)) throw e;
    return { code: e.code, message: e.message };
  }
}

forEachBackend("fs paths", ({ run, backend, runtime }) => {
  const p = (name: string) => join(dir, `${backend}-${name}`);

  test("mkdir makes one level; recursive makes the missing parents and accepts an existing directory", () => {
    run(function* () {
      yield* fs.mkdir(p("one"));
      yield* fs.mkdir(p("deep/a/b/c"), { recursive: true });
      yield* fs.mkdir(p("deep/a/b/c"), { recursive: true });
      expect(yield* failure(fs.mkdir(p("one")))).toEqual({ code: "EEXIST", message: `mkdir failed: EEXIST (${p("one")})` });
      expect((yield* failure(fs.mkdir(p("nope/x"))))?.code).toBe("ENOENT");
    });
    expect(statSync(p("one")).isDirectory()).toBe(true);
    expect(statSync(p("deep/a/b/c")).isDirectory()).toBe(true);
  });

  test("mkdir recursive over a file fails with EEXIST naming the path", () => {
    writeFileSync(p("afile"), "x");
    const f = run(function* () {
      return yield* failure(fs.mkdir(p("afile"), { recursive: true }));
    });
    expect(f?.code).toBe("EEXIST");
    expect(f?.message).toContain(p("afile"));
  });

  test("readDir lists names with their types (no . or ..), and a missing directory is ENOENT naming it", () => {
    const d = p("list");
    mkdirSync(d);
    writeFileSync(join(d, "f.txt"), "x");
    mkdirSync(join(d, "sub"));
    symlinkSync("f.txt", join(d, "link"));
    const r = run(function* () {
      const entries = yield* fs.readDir(d);
      const missing = yield* failure(fs.readDir(p("no-such-dir")));
      return { entries: entries.map((e) => [e.name, e.isFile(), e.isDirectory(), e.isSymbolicLink(), e.path]).sort(), missing };
    });
    expect(r.entries).toEqual([
      ["f.txt", true, false, false, join(d, "f.txt")],
      ["link", false, false, true, join(d, "link")],
      ["sub", false, true, false, join(d, "sub")],
    ]);
    expect(r.missing?.code).toBe("ENOENT");
    expect(r.missing?.message).toContain(p("no-such-dir"));
  });

  test("readDir of a directory with 3000 entries returns them all (the result grows past its first buffer)", () => {
    const d = p("many");
    mkdirSync(d);
    for (let i = 0; i < 3000; i++) writeFileSync(join(d, `entry-with-a-longish-name-${i}`), "");
    const names = run(function* () {
      return (yield* fs.readDir(d)).map((e) => e.name);
    });
    expect(names.length).toBe(3000);
    expect(new Set(names).size).toBe(3000);
  });

  test("remove, removeDir and removeDirAll; removeDirAll removes a symlink, never its target", () => {
    const outside = p("keep");
    mkdirSync(outside);
    writeFileSync(join(outside, "precious"), "x");
    const tree = p("tree");
    mkdirSync(join(tree, "a/b"), { recursive: true });
    writeFileSync(join(tree, "a/b/file"), "x");
    writeFileSync(join(tree, "top"), "x");
    symlinkSync(outside, join(tree, "a/link-to-keep"));
    writeFileSync(p("rmme"), "x");
    mkdirSync(p("emptydir"));
    const r = run(function* () {
      yield* fs.remove(p("rmme"));
      yield* fs.removeDir(p("emptydir"));
      const notEmpty = yield* failure(fs.removeDir(tree));
      const isDir = yield* failure(fs.remove(outside));
      yield* fs.removeDirAll(tree);
      const gone = yield* failure(fs.remove(p("rmme")));
      return { notEmpty: notEmpty?.code, isDir: isDir?.code, gone: gone?.code };
    });
    expect(r).toEqual({ notEmpty: "ENOTEMPTY", isDir: "EISDIR", gone: "ENOENT" });
    expect(existsSync(tree)).toBe(false);
    expect(existsSync(p("rmme"))).toBe(false);
    expect(existsSync(p("emptydir"))).toBe(false);
    expect(readFileSync(join(outside, "precious"), "utf8")).toBe("x");
  });

  test("rename moves and replaces atomically; a missing source names both paths", () => {
    writeFileSync(p("from"), "new");
    writeFileSync(p("to"), "old");
    const f = run(function* () {
      yield* fs.rename(p("from"), p("to"));
      return yield* failure(fs.rename(p("from"), p("to")));
    });
    expect(readFileSync(p("to"), "utf8")).toBe("new");
    expect(existsSync(p("from"))).toBe(false);
    expect(f).toEqual({ code: "ENOENT", message: `rename failed: ENOENT (${p("from")} -> ${p("to")})` });
  });

  test("metadata follows symlinks, symlinkMetadata does not; fields match node:fs", () => {
    writeFileSync(p("meta"), "12345");
    symlinkSync(p("meta"), p("meta-link"));
    const r = run(function* () {
      return { m: yield* fs.metadata(p("meta-link")), l: yield* fs.symlinkMetadata(p("meta-link")) };
    });
    const ref = statSync(p("meta"));
    const lref = lstatSync(p("meta-link"));
    expect(r.m.isFile()).toBe(true);
    expect(r.m.isSymbolicLink()).toBe(false);
    expect(r.l.isSymbolicLink()).toBe(true);
    expect({ size: r.m.size, ino: r.m.ino, nlink: r.m.nlink, uid: r.m.uid, gid: r.m.gid, dev: r.m.dev, mode: r.m.mode }).toEqual({
      size: 5, ino: ref.ino, nlink: ref.nlink, uid: ref.uid, gid: ref.gid, dev: ref.dev, mode: ref.mode,
    });
    expect(r.l.ino).toBe(lref.ino);
    expect(Math.abs(r.m.mtimeMs - ref.mtimeMs)).toBeLessThan(1);
    expect(Math.abs(r.m.ctimeMs - ref.ctimeMs)).toBeLessThan(1);
    expect(Math.abs(r.m.atimeMs - ref.atimeMs)).toBeLessThan(1);
    expect(r.m.permissions).toBe(ref.mode & 0o7777);
  });

  test("symlink, readLink and canonicalize", () => {
    mkdirSync(p("real"));
    writeFileSync(join(p("real"), "x"), "");
    const r = run(function* () {
      yield* fs.symlink(p("real"), p("sym"));
      const target = yield* fs.readLink(p("sym"));
      const canon = yield* fs.canonicalize(`${p("sym")}/../${backend}-sym/./x`);
      const notLink = yield* failure(fs.readLink(p("real")));
      const exists = yield* failure(fs.symlink("anything", p("sym")));
      return { target, canon, notLink: notLink?.code, exists: exists?.code };
    });
    expect(readlinkSync(p("sym"))).toBe(p("real"));
    expect(r).toEqual({ target: p("real"), canon: realpathSync(join(p("real"), "x")), notLink: "EINVAL", exists: "EEXIST" });
  });

  test("copyFile copies bytes and permission bits; a directory source is EISDIR; both files are closed", () => {
    const data = pattern(2.5 * 1024 * 1024, 3);
    writeFileSync(p("src"), data, { mode: 0o640 });
    const r = run(function* () {
      const n = yield* fs.copyFile(p("src"), p("dst"));
      const dirSrc = yield* failure(fs.copyFile(dir, p("dst2")));
      const missing = yield* failure(fs.copyFile(p("none"), p("dst3")));
      return { n, dirSrc: dirSrc?.code, missing };
    });
    expect(r.n).toBe(data.length);
    expect(Buffer.compare(readFileSync(p("dst")), data)).toBe(0);
    expect(statSync(p("dst")).mode & 0o777).toBe(0o640 & ~process.umask());
    expect(r.dirSrc).toBe("EISDIR");
    expect(r.missing?.code).toBe("ENOENT");
    expect(r.missing?.message).toContain(p("none"));
  });

  test("truncate (path) and setLen (file) shrink and extend", () => {
    writeFileSync(p("trunc"), "0123456789");
    const r = run(function* () {
      yield* fs.truncate(p("trunc"), 4);
      const a = readFileSync(p("trunc"), "utf8");
      const f = yield* fs.open(p("trunc"), "r+");
      yield* f.setLen(8);
      const size = (yield* f.stat()).size;
      yield* f.close();
      const bad = yield* failure(fs.truncate(p("no-file"), 1));
      return { a, size, bad: bad?.message };
    });
    expect(r.a).toBe("0123");
    expect(r.size).toBe(8);
    expect(readFileSync(p("trunc"))).toEqual(Buffer.from([0x30, 0x31, 0x32, 0x33, 0, 0, 0, 0]));
    expect(r.bad).toContain(p("no-file"));
  });

  test("readAt/writeAt are positional and leave the file's position alone", () => {
    const r = run(function* () {
      const f = yield* fs.open(p("pos"), "w+");
      yield* f.writeAt(new TextEncoder().encode("world"), 6);
      yield* f.writeAt(new TextEncoder().encode("hello "), 0);
      const buf = new Uint8Array(11);
      const n = yield* f.readAt(buf, 0);
      const position = f.position;
      yield* f.close();
      return { text: new TextDecoder().decode(buf.subarray(0, n)), position };
    });
    expect(r).toEqual({ text: "hello world", position: 0 });
    run(function* () {
      const f = yield* fs.open(p("pos"), "r");
      expect(() => f.readAt(new Uint8Array(1), -1)).toThrow(RangeError);
      expect(() => f.writeAt(new Uint8Array(1), 1.5)).toThrow(RangeError);
      yield* f.close();
    });
  });

  test("open errors name the path", () => {
    const f = run(function* () {
      return yield* failure(fs.open(p("not-here"), "r"));
    });
    expect(f?.message).toContain(p("not-here"));
  });

  test("ordered writes: two writes to one range issued back to back land in issue order (200 rounds, 1 MiB each)", () => {
    const a = new Uint8Array(1024 * 1024).fill(0x41);
    const b = new Uint8Array(1024 * 1024).fill(0x42);
    const bad = run(function* () {
      const f = yield* fs.open(p("order"), "w+");
      let wrong = 0;
      for (let round = 0; round < 200; round++) {
        const [first, second] = round % 2 === 0 ? [a, b] : [b, a];
        // Both are in flight at once: the second is issued before the first completed.
        yield* joinFuts(f.writeAt(first, 0), f.writeAt(second, 0));
        const probe = new Uint8Array(1);
        for (const at of [0, 512 * 1024, 1024 * 1024 - 1]) {
          yield* f.readAt(probe, at);
          if (probe[0] !== second[0]) wrong++;
        }
      }
      yield* f.close();
      return wrong;
    });
    expect(bad).toBe(0);
  });

  test("ordered writes: a setLen issued after a write lands after it; a sync waits for the writes before it", () => {
    const r = run(function* () {
      const f = yield* fs.open(p("order2"), "w+");
      const data = new Uint8Array(256 * 1024).fill(7);
      yield* joinFuts(f.writeAt(data, 0), f.setLen(10), f.sync());
      const size = (yield* f.stat()).size;
      yield* f.close();
      return size;
    });
    expect(r).toBe(10);
  });

  test("a write cancelled while queued behind a blocked one never runs; the queue moves on", () => {
    // A FIFO whose pipe is full: the first write blocks (in a pool Worker, or poll-armed in
    // the kernel) until the test drains it, so the second is certainly still queued.
    const path = p("fifo-order");
    mkfifo(path);
    const side = openSync(path, O_RDWR | SYS.O_NONBLOCK);
    const filled = fillPipe(side);
    const got = run(function* () {
      const f = yield* fs.open(path, "r+");
      const noop = { waker: { wake() {} } };
      const first = f.write(new Uint8Array(8).fill(1), -1);
      const second = f.write(new Uint8Array(8).fill(2), -1);
      const third = f.write(new Uint8Array(8).fill(3), -1);
      expect(first.poll(noop)).toBe(PENDING);
      expect(second.poll(noop)).toBe(PENDING);
      second.cancel();
      const both = joinFuts(first, third);
      const out: number[] = [];
      for (let i = 0; i < 1000 && out.length < filled + 16; i++) {
        out.push(...drainOnce(side));
        yield* sleep(1);
      }
      yield* both;
      for (let i = 0; i < 10; i++) out.push(...drainOnce(side));
      yield* f.close();
      return out.slice(filled);
    });
    closeSync(side);
    expect(got).toEqual([1, 1, 1, 1, 1, 1, 1, 1, 3, 3, 3, 3, 3, 3, 3, 3]);
  });

  if (backend === "uring") {
    test("uring: path ops fall back to the pool on a kernel without their opcodes (probe turned off)", () => {
      const d = runtime().driver as UringDriver;
      const probe = d.caps.probe;
      const saved = [U.OP_MKDIRAT, U.OP_RENAMEAT, U.OP_UNLINKAT, U.OP_SYMLINKAT, U.OP_FTRUNCATE].map((op) => [op, probe[op]!] as const);
      for (const [op] of saved) probe[op] = 0;
      try {
        run(function* () {
          yield* fs.mkdir(p("fb/x"), { recursive: true });
          yield* fs.symlink("x", p("fb/l"));
          yield* fs.rename(p("fb/l"), p("fb/l2"));
          yield* fs.remove(p("fb/l2"));
          const f = yield* fs.open(p("fb/t"), "w+");
          yield* f.setLen(5);
          expect((yield* f.stat()).size).toBe(5);
          yield* f.close();
          yield* fs.removeDirAll(p("fb"));
        });
      } finally {
        for (const [op, v] of saved) probe[op] = v;
      }
      expect(existsSync(p("fb"))).toBe(false);
    });
  }
}, { kernel: "real files" });
