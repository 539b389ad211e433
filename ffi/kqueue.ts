/**
 * Bindings to kqueue: kqueue(), kevent(), the constants of sys/event.h per OS, and pure
 * encoders/decoders for `struct kevent` change and event lists.
 *
 * Where kevent comes from (the *profile*, chosen once at load):
 *
 *     platform  library                          struct kevent   constants
 *     darwin    libSystem.B.dylib                32 bytes        xnu's (EVFILT_USER -10)
 *     freebsd   libc.so.7                        64 bytes        FreeBSD's (EVFILT_USER -11)
 *     linux     $REEL_KQUEUE_LIB (libkqueue)     32 bytes        FreeBSD's (EVFILT_USER -11)
 *
 * On Linux kqueue exists only through libkqueue (a user-space emulation over epoll,
 * eventfd and signalfd), and only when `REEL_KQUEUE_LIB` names the library; elsewhere on
 * Linux there is no profile and {@link kqueueUnavailable} says how to get one.
 *
 * struct kevent (64-bit):
 *
 *     offset  darwin, libkqueue (32)   freebsd 12+ (64 bytes)
 *     0       uintptr_t ident          uintptr_t ident
 *     8       int16_t   filter         short     filter
 *     10      uint16_t  flags          u_short   flags
 *     12      uint32_t  fflags         u_int     fflags
 *     16      intptr_t  data           int64_t   data
 *     24      void     *udata          void     *udata
 *     32      —                        uint64_t  ext[4]
 *
 * Sources: xnu bsd/sys/event.h (struct kevent under `#pragma pack(4)`, which moves nothing
 * on 64-bit: every 8-byte field is already 8-aligned), FreeBSD sys/sys/event.h (the
 * `ext[4]` layout since FreeBSD 12; the 32-byte one survives only as kevent_freebsd11 for
 * old binaries, behind a symbol version that dlsym does not return by default), and
 * libkqueue's include/sys/event.h (FreeBSD 11's fields and FreeBSD's constants).
 *
 * udata carries reel's token in its low 32 bits (high word 0); ident carries the fd.
 * A list is read and written through one Uint32Array and one Int16Array over one
 * ArrayBuffer, made once: no BigInt, no DataView, no per-event objects. Every function
 * takes the layout as a parameter, so the encodings are tested on any platform.
 *
 * Must never: dlopen at import time (the library is opened by the first
 * {@link openKqueue}, so importing this module anywhere is harmless), throw, or allocate
 * per call.
 * Must never import: lib/**
 */
import { dlopen } from "bun:ffi";
import { close, errno } from "./libc.ts";
import { ENOSYS } from "./errno.ts";

/** The shape of struct kevent on one OS. */
export interface KeventLayout {
  readonly os: "darwin" | "freebsd" | "libkqueue";
  /** sizeof(struct kevent). */
  readonly size: 32 | 64;
}

/** macOS on x86-64 and arm64 alike (one 64-bit layout). */
export const DARWIN_KEVENT: KeventLayout = { os: "darwin", size: 32 };
/** FreeBSD 12 and later. */
export const FREEBSD_KEVENT: KeventLayout = { os: "freebsd", size: 64 };
/** libkqueue on Linux (64-bit): FreeBSD 11's fields, the same 32 bytes as Darwin's. */
export const LIBKQUEUE_KEVENT: KeventLayout = { os: "libkqueue", size: 32 };

/** The sys/event.h values reel uses, per OS. */
export interface KqueueConstants {
  readonly EVFILT_READ: number;
  readonly EVFILT_WRITE: number;
  readonly EVFILT_USER: number;
  readonly EV_ADD: number;
  readonly EV_DELETE: number;
  readonly EV_ENABLE: number;
  readonly EV_DISABLE: number;
  readonly EV_ONESHOT: number;
  readonly EV_CLEAR: number;
  readonly EV_RECEIPT: number;
  readonly EV_DISPATCH: number;
  readonly EV_EOF: number;
  readonly EV_ERROR: number;
  readonly NOTE_TRIGGER: number;
  readonly NOTE_FFNOP: number;
  readonly NOTE_FFCOPY: number;
}

/** xnu bsd/sys/event.h. EVFILT_USER is -10 (FreeBSD's -10 is EVFILT_LIO). */
export const DARWIN_KQ: KqueueConstants = {
  EVFILT_READ: -1,
  EVFILT_WRITE: -2,
  EVFILT_USER: -10,
  EV_ADD: 0x0001,
  EV_DELETE: 0x0002,
  EV_ENABLE: 0x0004,
  EV_DISABLE: 0x0008,
  EV_ONESHOT: 0x0010,
  EV_CLEAR: 0x0020,
  EV_RECEIPT: 0x0040,
  EV_DISPATCH: 0x0080,
  EV_EOF: 0x8000,
  EV_ERROR: 0x4000,
  NOTE_TRIGGER: 0x0100_0000,
  NOTE_FFNOP: 0,
  NOTE_FFCOPY: 0xc000_0000,
};

/** FreeBSD sys/sys/event.h. Identical to Darwin's except EVFILT_USER (-11). */
export const FREEBSD_KQ: KqueueConstants = { ...DARWIN_KQ, EVFILT_USER: -11 };

/** libkqueue's include/sys/event.h: FreeBSD's values (EVFILT_USER -11). */
export const LIBKQUEUE_KQ: KqueueConstants = FREEBSD_KQ;

/** Where kevent comes from, with the struct layout and constants that go with it. */
export interface KqueueProfile {
  readonly name: "darwin" | "freebsd" | "libkqueue";
  /** The library dlopen'ed for kqueue() and kevent(). */
  readonly lib: string;
  readonly layout: KeventLayout;
  readonly k: KqueueConstants;
}

/** The environment variable naming libkqueue.so on Linux. */
export const KQUEUE_LIB_ENV = "REEL_KQUEUE_LIB";

/**
 * The profile for `platform` and `libPath` (REEL_KQUEUE_LIB), or null where there is no
 * kqueue: native on macOS and FreeBSD (the variable is ignored there), libkqueue on Linux
 * when the variable names it.
 *
 * @example
 * ```ts
 * kqueueProfile("linux", "/tmp/kq/libkqueue.so"); // { name: "libkqueue", layout: LIBKQUEUE_KEVENT, k: FREEBSD_KQ, … }
 * kqueueProfile("linux", undefined); // null
 * ```
 */
export function kqueueProfile(platform: string, libPath: string | undefined): KqueueProfile | null {
  if (platform === "darwin") return { name: "darwin", lib: "libSystem.B.dylib", layout: DARWIN_KEVENT, k: DARWIN_KQ };
  if (platform === "freebsd") return { name: "freebsd", lib: "libc.so.7", layout: FREEBSD_KEVENT, k: FREEBSD_KQ };
  if (platform === "linux" && libPath !== undefined && libPath !== "") {
    return { name: "libkqueue", lib: libPath, layout: LIBKQUEUE_KEVENT, k: LIBKQUEUE_KQ };
  }
  return null;
}

/** This process's profile (read once, at load), or null: see {@link kqueueProfile}. */
export const PROFILE: KqueueProfile | null = kqueueProfile(process.platform, process.env[KQUEUE_LIB_ENV]);
/** True where kqueue can be used: macOS, FreeBSD, or Linux with REEL_KQUEUE_LIB set. */
export const HAVE_KQUEUE = PROFILE !== null;
/** This process's layout and constants (Darwin's where there is no kqueue, for tests). */
export const KEVENT: KeventLayout = PROFILE?.layout ?? DARWIN_KEVENT;
export const KQ: KqueueConstants = PROFILE?.k ?? DARWIN_KQ;

/**
 * Why kqueue cannot be used in this process, as a sentence that says how to get it; null
 * when it can (the library itself is opened by {@link openKqueue}).
 *
 * @example
 * ```ts
 * kqueueUnavailable(); // on Linux without REEL_KQUEUE_LIB: "kqueue exists on Linux only through libkqueue: …"
 * ```
 */
export function kqueueUnavailable(): string | null {
  return PROFILE !== null ? null : howToGetKqueue(process.platform);
}

/**
 * What a platform without a kqueue profile needs, as a sentence.
 *
 * @example
 * ```ts
 * howToGetKqueue("linux"); // "… build it (../shared/tools/build-libkqueue.sh OUTDIR …) and set REEL_KQUEUE_LIB=…"
 * ```
 */
export function howToGetKqueue(platform: string): string {
  if (platform === "linux") {
    return (
      `kqueue exists on Linux only through libkqueue: build it (../shared/tools/build-libkqueue.sh OUTDIR ` +
      `makes OUTDIR/libkqueue.so) and set ${KQUEUE_LIB_ENV}=OUTDIR/libkqueue.so`
    );
  }
  return `kqueue is not available on ${platform}: it exists on macOS and FreeBSD, and on Linux through libkqueue (${KQUEUE_LIB_ENV})`;
}

/**
 * A kevent array: `capacity` structs of `layout.size` bytes, with its two views.
 *
 * @example
 * ```ts
 * const events = new KeventList(KEVENT, 1024); // once, at setup
 * const n = kevent(kqfd, null, 0, events, 1024, -1);
 * for (let i = 0; i < n; i++) console.log(keventFilter(events, i), keventToken(events, i));
 * ```
 */
export class KeventList {
  readonly u32: Uint32Array;
  readonly i16: Int16Array;
  /** Stride of one struct in u32 words (8 or 16) and in i16 halves (16 or 32). */
  readonly words: number;
  readonly halves: number;
  constructor(
    readonly layout: KeventLayout,
    readonly capacity: number,
  ) {
    const buf = new ArrayBuffer(layout.size * capacity);
    this.u32 = new Uint32Array(buf);
    this.i16 = new Int16Array(buf);
    this.words = layout.size >> 2;
    this.halves = layout.size >> 1;
  }

  /** The raw bytes, for tests. */
  bytes(): Uint8Array {
    return new Uint8Array(this.u32.buffer);
  }
}

const TWO32 = 0x1_0000_0000;

/**
 * EV_SET: writes entry i. ident is an fd (or EVFILT_USER id) < 2^32; data a safe integer;
 * token goes into udata's low word. ext[] (FreeBSD) is zeroed.
 *
 * @example
 * ```ts
 * const ch = new KeventList(KEVENT, 2);
 * encodeKevent(ch, 0, fd, KQ.EVFILT_READ, KQ.EV_ADD | KQ.EV_CLEAR | KQ.EV_RECEIPT, 0, 0, token);
 * ```
 */
export function encodeKevent(
  list: KeventList,
  i: number,
  ident: number,
  filter: number,
  flags: number,
  fflags: number,
  data: number,
  token: number,
): void {
  const w = i * list.words;
  const u = list.u32;
  u[w] = ident >>> 0;
  u[w + 1] = 0;
  list.i16[i * list.halves + 4] = filter;
  list.i16[i * list.halves + 5] = flags; // stored as the same 16 bits as the u16 field
  u[w + 3] = fflags >>> 0;
  u[w + 4] = data >>> 0;
  u[w + 5] = Math.floor(data / TWO32) >>> 0; // sign-extends negative data
  u[w + 6] = token >>> 0;
  u[w + 7] = 0;
  for (let k = 8; k < list.words; k++) u[w + k] = 0;
}

/** ident of entry i (low word: fds and reel's user ids fit in 32 bits). */
export function keventIdent(list: KeventList, i: number): number {
  return list.u32[i * list.words]!;
}

/** filter of entry i (negative: EVFILT_*). */
export function keventFilter(list: KeventList, i: number): number {
  return list.i16[i * list.halves + 4]!;
}

/** flags of entry i, unsigned. */
export function keventFlags(list: KeventList, i: number): number {
  return list.i16[i * list.halves + 5]! & 0xffff;
}

export function keventFflags(list: KeventList, i: number): number {
  return list.u32[i * list.words + 3]!;
}

/** data of entry i as a number (exact within ±2^53; errnos and byte counts are small). */
export function keventData(list: KeventList, i: number): number {
  const w = i * list.words;
  return (list.u32[w + 5]! | 0) * TWO32 + list.u32[w + 4]!;
}

/** The token in udata's low word. */
export function keventToken(list: KeventList, i: number): number {
  return list.u32[i * list.words + 6]!;
}

const SYMBOLS = {
  kqueue: { args: [], returns: "i32" },
  kevent: { args: ["i32", "ptr", "i32", "ptr", "i32", "ptr"], returns: "i32" },
} as const;

type KqSymbols = ReturnType<typeof dlopen<typeof SYMBOLS>>["symbols"];
/** libkqueue's synchronous teardown of closed kqueues (see {@link closeKqueue}). */
type DrainFn = () => void;

let C: KqSymbols | null = null;
let drain: DrainFn | null = null;
let openError: string | null = null;

/**
 * Opens the profile's library once: null when kqueue() and kevent() are ready, else why
 * not (no profile, or the dlopen failure naming the path). Never throws.
 *
 * @example
 * ```ts
 * const err = openKqueue();
 * if (err !== null) throw new RangeError(err);
 * ```
 */
export function openKqueue(): string | null {
  if (C !== null) return null;
  if (openError !== null) return openError;
  if (PROFILE === null) return (openError = kqueueUnavailable()!);
  try {
    C = dlopen(PROFILE.lib, SYMBOLS).symbols;
  } catch (err) {
    const why = err instanceof Error ? err.message : String(err);
    return (openError = `Cannot load kqueue from ${PROFILE.lib} (${KQUEUE_LIB_ENV}): ${why}`);
  }
  if (PROFILE.name === "libkqueue") {
    try {
      drain = dlopen(PROFILE.lib, { libkqueue_drain_pending_close: { args: [], returns: "void" } }).symbols
        .libkqueue_drain_pending_close as DrainFn;
    } catch {
      drain = null; // an older libkqueue: closed kqueues are freed asynchronously only
    }
  }
  return null;
}

function ret(r: number): number {
  return r < 0 ? -errno() : r;
}

/**
 * kqueue(): a new kqueue fd or −errno (−ENOSYS when the library is not open: call
 * {@link openKqueue} first).
 *
 * @example
 * ```ts
 * const kqfd = kqueue(); // < 0: −errno
 * ```
 */
export function kqueue(): number {
  if (C === null && openKqueue() !== null) return -ENOSYS;
  return ret(C!.kqueue());
}

/**
 * Closes a kqueue fd: close(2), and on libkqueue waits until the library has released
 * what it kept for that kqueue (its epoll fd, the read end of its close-detect pipe, the
 * EVFILT_USER eventfd), which its monitoring thread otherwise does some time after
 * close(2) returns. A kernel kqueue releases everything in close(2); with this, so does
 * libkqueue. Returns 0 or −errno.
 *
 * @example
 * ```ts
 * closeKqueue(kqfd);
 * ```
 */
export function closeKqueue(kq: number): number {
  const r = close(kq);
  drain?.();
  return r;
}

// struct timespec { time_t tv_sec; long tv_nsec; }: two 64-bit words on 64-bit targets.
const timespec = new Uint32Array(new ArrayBuffer(16));

/**
 * kevent(kq, changes[0, nchanges), events[0, nevents), timeout): the number of events
 * written, or −errno. timeoutMs < 0 blocks (NULL timeout), 0 polls, n > 0 waits ≤ n ms.
 *
 * @example
 * ```ts
 * encodeKevent(changes, 0, fd, KQ.EVFILT_READ, KQ.EV_ADD | KQ.EV_CLEAR | KQ.EV_RECEIPT, 0, 0, token);
 * const r = kevent(kqfd, changes, 1, receipts, 1, 0); // one receipt, never waits
 * ```
 */
export function kevent(
  kq: number,
  changes: KeventList | null,
  nchanges: number,
  events: KeventList | null,
  nevents: number,
  timeoutMs: number,
): number {
  let ts: Uint32Array | null = null;
  if (timeoutMs >= 0) {
    timespec[0] = Math.floor(timeoutMs / 1000);
    timespec[1] = 0;
    timespec[2] = (timeoutMs % 1000) * 1_000_000;
    timespec[3] = 0;
    ts = timespec;
  }
  // SAFETY: the lists and `timespec` view ArrayBuffers their owners keep referenced; the
  // kernel reads the changes and writes the events only during this synchronous call.
  if (C === null && openKqueue() !== null) return -ENOSYS;
  return ret(C!.kevent(kq, changes?.u32 ?? null, nchanges, events?.u32 ?? null, nevents, ts));
}
