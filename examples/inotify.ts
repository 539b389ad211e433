/**
 * Watching a directory with inotify through AsyncFd: reel waits for the inotify fd to be
 * readable; the example reads the events itself (inotify_init1 / inotify_add_watch / read
 * through bun:ffi: AsyncFd works with any non-blocking fd, including ones reel knows
 * nothing about). Linux only.
 *
 *   bun run examples/inotify.ts            watch a fresh temp dir and make a few changes in it
 *   bun run examples/inotify.ts DIR        watch DIR until Ctrl-C
 *
 * The rule AsyncFd follows: read until EAGAIN (tryIo returns null then, and clears the
 * readiness), then await readable() again. The AsyncFd owns the fd: close() closes it.
 */
import { dlopen, ptr, toArrayBuffer, type Pointer } from "bun:ffi";
import { mkdtempSync, renameSync, rmSync, unlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { AsyncFd, blockOn, sleep, spawn } from "../lib/index.ts";

if (process.platform !== "linux") {
  console.error("inotify is Linux-only");
  process.exit(2);
}

const libc = dlopen("libc.so.6", {
  inotify_init1: { args: ["i32"], returns: "i32" },
  inotify_add_watch: { args: ["i32", "ptr", "u32"], returns: "i32" },
  read: { args: ["i32", "ptr", "u64"], returns: "i32" },
  __errno_location: { args: [], returns: "ptr" },
}).symbols;
// errno, read right after a failing call (this thread's, from __errno_location()).
const errno = new Int32Array(toArrayBuffer(libc.__errno_location() as Pointer, 0, 4));

const IN_NONBLOCK = 0o4000;
const IN_CLOEXEC = 0o2000000;
const EVENTS: [number, string][] = [
  [0x100, "created"], [0x200, "deleted"], [0x2, "modified"], [0x40, "moved out"], [0x80, "moved in"], [0x8, "closed after writing"],
];
const MASK = EVENTS.reduce((m, [bit]) => m | bit, 0);

/** read(2) in reel's convention (what tryIo expects): bytes read, or −errno. */
function readInto(fd: number, buf: Uint8Array): number {
  const n = libc.read(fd, ptr(buf), buf.byteLength);
  return n >= 0 ? n : -errno[0]!;
}

/** Prints every struct inotify_event in buf[0..n): wd, mask, cookie, len, name. */
function printEvents(buf: Uint8Array, n: number): number {
  const dv = new DataView(buf.buffer, buf.byteOffset, n);
  let count = 0;
  for (let off = 0; off + 16 <= n; ) {
    const mask = dv.getUint32(off + 4, true);
    const len = dv.getUint32(off + 12, true);
    const raw = buf.subarray(off + 16, off + 16 + len);
    const name = new TextDecoder().decode(raw.subarray(0, raw.indexOf(0) < 0 ? len : raw.indexOf(0)));
    const what = EVENTS.filter(([bit]) => (mask & bit) !== 0).map(([, s]) => s).join(", ");
    console.log(`  ${name || "(the directory)"}: ${what}`);
    off += 16 + len;
    count++;
  }
  return count;
}

const demo = process.argv[2] === undefined;
const dir = process.argv[2] ?? mkdtempSync(join(tmpdir(), "reel-inotify-"));

try {
  blockOn(function* () {
    const ifd = libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (ifd < 0) throw new Error("inotify_init1 failed");
    if (libc.inotify_add_watch(ifd, ptr(new TextEncoder().encode(`${dir}\0`)), MASK) < 0) throw new Error(`cannot watch ${dir}`);
    const afd = new AsyncFd(ifd); // owns ifd from here: afd.close() closes it
    console.log(`watching ${dir}${demo ? " (making a few changes in it)" : " (Ctrl-C to stop)"}`);
    if (demo) {
      spawn(function* () {
        yield* sleep(20);
        writeFileSync(join(dir, "a.txt"), "one");
        yield* sleep(20);
        renameSync(join(dir, "a.txt"), join(dir, "b.txt"));
        yield* sleep(20);
        unlinkSync(join(dir, "b.txt"));
      });
    }
    const buf = new Uint8Array(new ArrayBuffer(4096));
    let seen = 0;
    while (!demo || seen < 6) {
      const guard = yield* afd.readable();
      for (;;) {
        const n = guard.tryIo((fd) => readInto(fd, buf));
        if (n === null) break; // EAGAIN: drained; readiness cleared, wait again
        seen += printEvents(buf, n);
      }
    }
    afd.close();
  });
} finally {
  if (demo) rmSync(dir, { recursive: true, force: true });
}
