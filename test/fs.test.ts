/**
 * reel/fs on every backend: io_uring ops on uring, the Worker pool on epoll/poll.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PENDING, SysError, sleep, spawn, type Context } from "../lib/index.ts";
import * as fs from "../lib/fs/index.ts";
import { UringDriver } from "../lib/driver/uring/driver.ts";
import { forEachBackend } from "./helpers.ts";
import { pattern } from "./fault_util.ts";

const noop: Context = { waker: { wake() {} } };

let dir = "";
beforeAll(async () => {
  // The pool's Workers (and their fds) exist before any fd-leak check counts fds.
  await fs.startFsPool();
  dir = mkdtempSync(join(tmpdir(), "reel-fs-"));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));


forEachBackend("fs", ({ run, backend, runtime }) => {
  const p = (name: string) => join(dir, `${backend}-${name}`);

  test("writeFile then readFile round-trips 3.5 MiB (several 1 MiB ops each way)", () => {
    const data = pattern(3.5 * 1024 * 1024, 7);
    const back = run(function* () {
      yield* fs.writeFile(p("round"), data);
      return yield* fs.readFile(p("round"));
    });
    expect(back.length).toBe(data.length);
    expect(Buffer.compare(back, data)).toBe(0);
    expect(Buffer.compare(readFileSync(p("round")), data)).toBe(0);
  });

  test("open/write/read track the file position; reads at the end return 0", () => {
    const out = run(function* () {
      const f = yield* fs.open(p("pos"), "w+");
      yield* f.write(new TextEncoder().encode("hello "));
      yield* f.write(new TextEncoder().encode("world"));
      expect(f.position).toBe(11);
      const buf = new Uint8Array(32);
      const n = yield* f.read(buf, 0);
      const eof = yield* f.read(buf, 11);
      yield* f.sync();
      yield* f.close();
      return [new TextDecoder().decode(buf.subarray(0, n)), eof];
    });
    expect(out).toEqual(["hello world", 0]);
  });

  test("stat reports size and type for paths and open files; a missing path is SysError ENOENT", () => {
    writeFileSync(p("stat"), "12345");
    const r = run(function* () {
      const s = yield* fs.stat(p("stat"));
      const d = yield* fs.stat(dir);
      const f = yield* fs.open(p("stat"));
      const fsz = (yield* f.stat()).size;
      yield* fs.close(f);
      let code = "";
      try {
        yield* fs.stat(p("missing"));
      } catch (e) {
        code = (e as SysError).code;
      }
      return { size: s.size, file: s.isFile(), dir: d.isDirectory(), fsz, code, mtime: s.mtimeMs > 0 };
    });
    expect(r).toEqual({ size: 5, file: true, dir: true, fsz: 5, code: "ENOENT", mtime: true });
  });

  test("open fails with typed errors: ENOENT for a missing file, EEXIST for wx on an existing one", () => {
    writeFileSync(p("exists"), "x");
    const codes = run(function* () {
      const out: string[] = [];
      for (const [path, flags] of [[p("nope"), "r"], [p("exists"), "wx"]] as const) {
        try {
          yield* fs.open(path, flags);
        } catch (e) {
          out.push(`${(e as SysError).syscall === "open" || (e as SysError).syscall === "openat" ? "open" : "?"}:${(e as SysError).code}`);
        }
      }
      return out;
    });
    expect(codes).toEqual(["open:ENOENT", "open:EEXIST"]);
    expect(() => fs.open(p("x"), "bogus" as fs.OpenFlags)).toThrow(TypeError);
  });

  test("a linked pair of writes at the same offset lands in order", () => {
    const content = run(function* () {
      const f = yield* fs.open(p("linked"), "w+");
      for (let i = 0; i < 50; i++) {
        yield* f.writeLinked([
          { data: new TextEncoder().encode(`AAAA${i % 10}`), position: 0 },
          { data: new TextEncoder().encode("BB"), position: 0 },
        ]);
      }
      yield* f.close();
      return readFileSync(p("linked"), "utf8");
    });
    expect(content).toBe("BBAA9");
  });

  test("eight tasks read files concurrently while a timer task keeps ticking", () => {
    for (let i = 0; i < 8; i++) writeFileSync(p(`c${i}`), pattern(200_000, i + 1));
    const r = run(function* () {
      let ticks = 0;
      const timer = spawn(function* () {
        for (let i = 0; i < 3; i++) {
          yield* sleep(1);
          ticks++;
        }
      });
      const hs = [];
      for (let i = 0; i < 8; i++) hs.push(spawn(fs.readFile(p(`c${i}`))));
      const ok: boolean[] = [];
      for (let i = 0; i < 8; i++) ok.push(Buffer.compare(yield* hs[i]!, pattern(200_000, i + 1)) === 0);
      yield* timer;
      return { ok, ticks };
    });
    expect(r).toEqual({ ok: Array(8).fill(true), ticks: 3 });
  });

  test("a 64 MB file streams through one chunk buffer: checksum matches, memory stays bounded", () => {
    const MB = 1024 * 1024;
    const chunk = pattern(MB, 99);
    Bun.gc(true);
    const rss0 = process.memoryUsage().rss;
    let peak = 0;
    const sum = run(function* () {
      const f = yield* fs.open(p("big"), "w");
      for (let i = 0; i < 64; i++) {
        chunk[0] = i; // each MiB differs in its first byte
        yield* f.writeAll(chunk, i * MB);
      }
      yield* f.close();
      chunk[0] = 0;
      const r = yield* fs.readChunks(p("big"));
      let s = 0;
      let idx = 0;
      for (let c = yield* r.next(); c !== null; c = yield* r.next()) {
        for (let j = 0; j < c.length; j += 4096) s = (s + (j === 0 ? 0 : c[j]!) * (idx + 1)) >>> 0;
        idx++;
        peak = Math.max(peak, process.memoryUsage().rss - rss0);
      }
      yield* r.close();
      return s;
    });
    let want = 0;
    for (let i = 0; i < 64; i++) for (let j = 4096; j < MB; j += 4096) want = (want + chunk[j]! * (i + 1)) >>> 0;
    expect(sum).toBe(want);
    expect(Bun.file(p("big")).size).toBe(64 * MB);
    expect(peak).toBeLessThan(48 * MB);
    rmSync(p("big"));
  }, 60_000);

  test("fs_open_completed_then_cancelled_before_repoll_closes_its_fd; cancelled in flight leaks nothing", () => {
    writeFileSync(p("cancel"), "x");
    const d = runtime().driver;
    const busy = () => d.pendingWork > 0;
    run(function* () {
      const done = fs.open(p("cancel"));
      expect(done.poll(noop)).toBe(PENDING);
      for (let i = 0; i < 200 && busy(); i++) d.turn(10); // the open completed; nobody re-polls
      expect(busy()).toBe(false);
      done.cancel(); // its fd is closed (the afterEach fd check would see a leak)
      const inFlight = fs.open(p("cancel"));
      expect(inFlight.poll(noop)).toBe(PENDING);
      inFlight.cancel(); // uring: never submitted (NOP); pool: abandoned, closed when it ends
      for (let i = 0; i < 200 && busy(); i++) d.turn(10);
      expect(busy()).toBe(false);
      yield* sleep(0);
    });
  });

  test("readFile and writeFile take { signal }: an abort mid-way throws the signal's reason and leaves no fd open", () => {
    const big = pattern(8 * 1024 * 1024, 5);
    writeFileSync(p("sig"), big);
    const out = run(function* () {
      const reasons: unknown[] = [];
      for (const make of [
        (s: AbortSignal) => fs.readFile(p("sig"), { signal: s }),
        (s: AbortSignal) => fs.writeFile(p("sig-w"), big, { signal: s }),
      ]) {
        const ac = new AbortController();
        const h = spawn(make(ac.signal) as ReturnType<typeof fs.readFile>);
        yield* sleep(0); // started: the open (and maybe a chunk) is under way
        ac.abort(new Error("stop"));
        try {
          yield* h;
        } catch (e) {
          reasons.push((e as { cause?: unknown }).cause ?? e);
        }
      }
      // A signal that is already aborted stops the call at its first poll.
      const done = new AbortController();
      done.abort(new Error("already"));
      try {
        yield* fs.readFile(p("sig"), { signal: done.signal });
      } catch (e) {
        reasons.push(e);
      }
      for (let i = 0; i < 500 && runtime().driver.pendingWork > 0; i++) yield* sleep(1);
      return reasons.map((r) => (r as Error).message);
    });
    expect(out.length).toBe(3);
    expect(out[2]).toBe("already");
    for (const m of out.slice(0, 2)) expect(["stop"]).toContain(m);
    expect(() => fs.readFile(p("sig"), { signal: "nope" as unknown as AbortSignal })).toThrow(TypeError);
  });

  test("no op, owned buffer or pool job is left behind", () => {
    const d = runtime().driver;
    expect(d.pendingWork).toBe(0);
    if (d instanceof UringDriver) {
      expect(d.pool.outstanding).toBe(0);
      expect(d.inflight).toBe(0);
    }
  });
}, { kernel: "real files" });
