/**
 * Bindings to libc: sockets, fds, fcntl, rlimits, and errno.
 *
 * Every function returns the call's result (≥ 0) or −errno; none throws, none allocates
 * per call. Buffers are passed as Uint8Array views (bun:ffi hands their data pointer to
 * the call); lengths come from the view, capped at {@link MAX_IO} so that ssize_t results
 * fit the i32 return type (i64 returns would be BigInt, ~28 ns each).
 *
 * Invariants:
 * - errno is read through one Int32Array created at load time over this thread's
 *   `__errno_location()` (Linux) / `__error()` (BSD), right after the failing call.
 * - Pointers handed to the kernel are only held for the duration of the synchronous call.
 *
 * Must never: throw, read the `errno` symbol directly (it segfaults), declare i64 returns
 * on hot paths, or keep a pointer into a JS buffer past the call that used it.
 * Must never import: lib/**
 */
import { dlopen, ptr, toArrayBuffer, type Pointer } from "bun:ffi";
import { SYS } from "./constants.ts";
import { openFixedFcntl } from "./darwin.ts";
import { NET } from "./constants.ts"; // the message layouts (sendmsg/recvmsg, at the end of this file)

/** The largest byte count one read/write call is given: keeps results within int32. */
export const MAX_IO = 0x3fff_f000;

const LIBC_PATH =
  process.platform === "linux" ? "libc.so.6" : process.platform === "freebsd" ? "libc.so.7" : "libSystem.B.dylib";
const ERRNO_FN = process.platform === "linux" ? "__errno_location" : "__error";

const lib = dlopen(LIBC_PATH, {
  [ERRNO_FN]: { args: [], returns: "ptr" },
  socket: { args: ["i32", "i32", "i32"], returns: "i32" },
  socketpair: { args: ["i32", "i32", "i32", "ptr"], returns: "i32" },
  setsockopt: { args: ["i32", "i32", "i32", "ptr", "u32"], returns: "i32" },
  getsockopt: { args: ["i32", "i32", "i32", "ptr", "ptr"], returns: "i32" },
  bind: { args: ["i32", "ptr", "u32"], returns: "i32" },
  listen: { args: ["i32", "i32"], returns: "i32" },
  accept: { args: ["i32", "ptr", "ptr"], returns: "i32" },
  connect: { args: ["i32", "ptr", "u32"], returns: "i32" },
  read: { args: ["i32", "ptr", "u64"], returns: "i32" },
  write: { args: ["i32", "ptr", "u64"], returns: "i32" },
  readv: { args: ["i32", "ptr", "i32"], returns: "i32" },
  writev: { args: ["i32", "ptr", "i32"], returns: "i32" },
  recv: { args: ["i32", "ptr", "u64", "i32"], returns: "i32" },
  send: { args: ["i32", "ptr", "u64", "i32"], returns: "i32" },
  shutdown: { args: ["i32", "i32"], returns: "i32" },
  close: { args: ["i32"], returns: "i32" },
  // Variadic in C: declared with fixed int args, which is exact on x86-64 and arm64 Linux
  // and FreeBSD, not on Apple arm64 (variadic arguments go on the stack there): Darwin calls ffi/darwin.ts's instead.
  fcntl: { args: ["i32", "i32", "i32"], returns: "i32" },
  getsockname: { args: ["i32", "ptr", "ptr"], returns: "i32" },
  getpeername: { args: ["i32", "ptr", "ptr"], returns: "i32" },
  pipe: { args: ["ptr"], returns: "i32" },
  getrlimit: { args: ["i32", "ptr"], returns: "i32" },
  setrlimit: { args: ["i32", "ptr"], returns: "i32" },
  getpid: { args: [], returns: "i32" },
  dup: { args: ["i32"], returns: "i32" },
  dup2: { args: ["i32", "i32"], returns: "i32" },
  // Variadic in C (mode): declared without it, which only O_CREAT would need.
  open: { args: ["ptr", "i32"], returns: "i32" },
  memcpy: { args: ["ptr", "ptr", "u64"], returns: "void" },
});

// Linux- and FreeBSD-only symbols, absent from Darwin's libSystem.
const linuxLike = process.platform !== "darwin";
const ext = linuxLike
  ? dlopen(LIBC_PATH, {
      accept4: { args: ["i32", "ptr", "ptr", "i32"], returns: "i32" },
      pipe2: { args: ["ptr", "i32"], returns: "i32" },
      dup3: { args: ["i32", "i32", "i32"], returns: "i32" },
    }).symbols
  : null;

const C = lib.symbols;

// SAFETY: __errno_location() points into this thread's TLS block, which lives as long as
// the thread (the JS thread that loaded this module). A Worker loads its own copy.
const errnoView = new Int32Array(toArrayBuffer(C[ERRNO_FN]!() as Pointer, 0, 4));

/** The calling thread's errno, exact when read right after the failing call. */
export function errno(): number {
  return errnoView[0]!;
}

/** Maps a raw libc return to result-or-−errno. */
function ret(r: number): number {
  return r < 0 ? -errnoView[0]! : r;
}

function clampLen(n: number): number {
  return n > MAX_IO ? MAX_IO : n;
}

export function socket(domain: number, type: number, protocol: number): number {
  return ret(C.socket(domain, type, protocol));
}

/** socketpair into `fds` (two int32s). */
export function socketpair(domain: number, type: number, protocol: number, fds: Int32Array): number {
  return ret(C.socketpair(domain, type, protocol, fds));
}

// Scratch for int options and socklen_t out-params; only held during one call.
const intScratch = new Int32Array(new ArrayBuffer(8));
const lenScratch = new Uint32Array(new ArrayBuffer(4));

export function setsockoptInt(fd: number, level: number, name: number, value: number): number {
  intScratch[0] = value;
  return ret(C.setsockopt(fd, level, name, intScratch, 4));
}

/** getsockopt of an int option: the value (≥ 0 for every option reel reads) or −errno. */
export function getsockoptInt(fd: number, level: number, name: number): number {
  lenScratch[0] = 4;
  const r = C.getsockopt(fd, level, name, intScratch, lenScratch);
  return r < 0 ? -errnoView[0]! : intScratch[0]!;
}

/** setsockopt with a raw option buffer (struct linger, …). */
export function setsockopt(fd: number, level: number, name: number, value: Uint8Array): number {
  return ret(C.setsockopt(fd, level, name, value, value.byteLength));
}

export function bind(fd: number, addr: Uint8Array, addrLen: number): number {
  return ret(C.bind(fd, addr, addrLen));
}

export function listen(fd: number, backlog: number): number {
  return ret(C.listen(fd, backlog));
}

/**
 * accept4 with `flags` (SOCK_NONBLOCK|SOCK_CLOEXEC); on Darwin, accept (the caller sets the
 * flags with fcntl). `addr`/`addrLen` receive the peer's sockaddr; either may be null.
 */
export function accept4(fd: number, addr: Uint8Array | null, addrLen: Uint32Array | null, flags: number): number {
  if (ext !== null) return ret(ext.accept4(fd, addr, addrLen, flags));
  return ret(C.accept(fd, addr, addrLen));
}

export function connect(fd: number, addr: Uint8Array, addrLen: number): number {
  return ret(C.connect(fd, addr, addrLen));
}

/** read into `buf`: bytes read (0 = EOF) or −errno. */
export function read(fd: number, buf: Uint8Array): number {
  return ret(C.read(fd, buf, clampLen(buf.byteLength)));
}

/** write from `buf`: bytes written or −errno. */
export function write(fd: number, buf: Uint8Array): number {
  return ret(C.write(fd, buf, clampLen(buf.byteLength)));
}

export function recv(fd: number, buf: Uint8Array, flags: number): number {
  return ret(C.recv(fd, buf, clampLen(buf.byteLength), flags));
}

export function send(fd: number, buf: Uint8Array, flags: number): number {
  return ret(C.send(fd, buf, clampLen(buf.byteLength), flags));
}

/** The most buffers one readv/writev call takes here (IOV_MAX is 1024 on Linux and the BSDs). */
export const IOV_BATCH = 64;
// struct iovec { void *base; size_t len } — 16 bytes on 64-bit, as (lo, hi) u32 pairs.
const iov = new Uint32Array(new ArrayBuffer(IOV_BATCH * 16));
const TWO32 = 0x1_0000_0000;

/** Fills the iovec scratch from `bufs` (at most IOV_BATCH); returns how many it took. */
function fillIov(bufs: readonly Uint8Array[]): number {
  const n = bufs.length < IOV_BATCH ? bufs.length : IOV_BATCH;
  let total = 0;
  for (let i = 0; i < n; i++) {
    const b = bufs[i]!;
    // SAFETY: ptr() is taken right before the synchronous readv/writev with no allocation
    // in between, so the GC cannot move the storage while the kernel reads the iovec; the
    // kernel drops the pointer when the call returns.
    const p = b.byteLength === 0 ? 0 : (ptr(b) as number);
    const len = Math.min(b.byteLength, MAX_IO - total);
    total += len;
    iov[i * 4] = p >>> 0;
    iov[i * 4 + 1] = Math.floor(p / TWO32);
    iov[i * 4 + 2] = len;
    iov[i * 4 + 3] = 0;
  }
  return n;
}

/** readv into up to {@link IOV_BATCH} buffers: bytes read or −errno. */
export function readv(fd: number, bufs: readonly Uint8Array[]): number {
  const n = fillIov(bufs);
  return ret(C.readv(fd, iov, n));
}

/** writev from up to {@link IOV_BATCH} buffers: bytes written or −errno. */
export function writev(fd: number, bufs: readonly Uint8Array[]): number {
  const n = fillIov(bufs);
  return ret(C.writev(fd, iov, n));
}

export function shutdown(fd: number, how: number): number {
  return ret(C.shutdown(fd, how));
}

export function close(fd: number): number {
  return ret(C.close(fd));
}

// Darwin: fcntl through the fixed 9-argument declaration that also fills Apple arm64's
// variadic stack slot (ffi/darwin.ts explains); elsewhere the plain declaration above.
const darwinFcntl = process.platform === "darwin" ? openFixedFcntl(LIBC_PATH) : null;

export function fcntl(fd: number, cmd: number, arg: number): number {
  return ret(darwinFcntl !== null ? darwinFcntl(fd, cmd, arg) : C.fcntl(fd, cmd, arg));
}

/** Darwin's pipe2: applies O_NONBLOCK / O_CLOEXEC from `flags` to one end with fcntl. */
function applyPipeFlags(fd: number, flags: number): number {
  if ((flags & SYS.O_NONBLOCK) !== 0) {
    const fl = fcntl(fd, SYS.F_GETFL, 0);
    if (fl < 0) return fl;
    const r = fcntl(fd, SYS.F_SETFL, fl | SYS.O_NONBLOCK);
    if (r < 0) return r;
  }
  return (flags & SYS.O_CLOEXEC) !== 0 ? fcntl(fd, SYS.F_SETFD, SYS.FD_CLOEXEC) : 0;
}

export function getsockname(fd: number, addr: Uint8Array, addrLen: Uint32Array): number {
  return ret(C.getsockname(fd, addr, addrLen));
}

export function getpeername(fd: number, addr: Uint8Array, addrLen: Uint32Array): number {
  return ret(C.getpeername(fd, addr, addrLen));
}

/** pipe2 (pipe + fcntl on Darwin) into `fds` (two int32s). */
export function pipe2(fds: Int32Array, flags: number): number {
  if (ext !== null) return ret(ext.pipe2(fds, flags));
  const r = ret(C.pipe(fds));
  if (r < 0) return r;
  const e = Math.min(applyPipeFlags(fds[0]!, flags), applyPipeFlags(fds[1]!, flags));
  if (e < 0) {
    C.close(fds[0]!);
    C.close(fds[1]!);
  }
  return e < 0 ? e : 0;
}

export function dup(fd: number): number {
  return ret(C.dup(fd));
}

/**
 * dup3(from, to, O_CLOEXEC) (dup2 + F_SETFD on Darwin): `to` now names what `from` names,
 * close-on-exec; a file `to` named before is closed atomically.
 */
export function dupCloexec(from: number, to: number): number {
  if (ext !== null) return ret(ext.dup3(from, to, SYS.O_CLOEXEC));
  const r = ret(C.dup2(from, to));
  return r < 0 ? r : fcntl(to, SYS.F_SETFD, SYS.FD_CLOEXEC) < 0 ? -errnoView[0]! : r;
}

/** open(path, flags) of an existing file (no O_CREAT: no mode); `path` is NUL-terminated. */
export function openExisting(path: Uint8Array, flags: number): number {
  return ret(C.open(path, flags));
}

export function getpid(): number {
  return C.getpid();
}

// struct rlimit { rlim_t cur, max } as (lo, hi) u32 pairs; RLIM_INFINITY is all ones.
const rl = new Uint32Array(new ArrayBuffer(16));

function rlimValue(lo: number, hi: number): number {
  return hi === 0xffff_ffff && lo === 0xffff_ffff ? Infinity : hi * TWO32 + lo;
}

/** getrlimit: `[soft, hard]` (Infinity for RLIM_INFINITY), or −errno. */
export function getrlimit(resource: number): [number, number] | number {
  const r = C.getrlimit(resource, rl);
  if (r < 0) return -errnoView[0]!;
  return [rlimValue(rl[0]!, rl[1]!), rlimValue(rl[2]!, rl[3]!)];
}

function putRlim(i: number, v: number): void {
  if (v === Infinity) {
    rl[i] = 0xffff_ffff;
    rl[i + 1] = 0xffff_ffff;
  } else {
    rl[i] = v >>> 0;
    rl[i + 1] = Math.floor(v / TWO32);
  }
}

/** setrlimit(resource, soft, hard): 0 or −errno. */
export function setrlimit(resource: number, soft: number, hard: number): number {
  putRlim(0, soft);
  putRlim(2, hard);
  return ret(C.setrlimit(resource, rl));
}

// ---------------------------------------------------------------------------------------
// Messages: sendmsg / recvmsg (and sendmmsg / recvmmsg where they exist), raw getsockopt,
// unlink. The msghdrs live in one scratch table, filled slot by slot with setMsg() and
// handed to one call; the out-fields (address length, ancillary length, flags, per-message
// length) are read back from the same slots.

const msgSyms = dlopen(LIBC_PATH, {
  sendmsg: { args: ["i32", "ptr", "i32"], returns: "i32" },
  recvmsg: { args: ["i32", "ptr", "i32"], returns: "i32" },
  getsockopt: { args: ["i32", "i32", "i32", "ptr", "ptr"], returns: "i32" },
  unlink: { args: ["ptr"], returns: "i32" },
}).symbols;
// Linux and FreeBSD only (Darwin has no *mmsg: callers loop over sendmsg/recvmsg there).
const mmsgSyms =
  NET.MMSGHDR_SIZE > 0
    ? dlopen(LIBC_PATH, {
        sendmmsg: { args: ["i32", "ptr", "u64", "i32"], returns: "i32" },
        recvmmsg: { args: ["i32", "ptr", "u64", "i32", "ptr"], returns: "i32" },
      }).symbols
    : null;

/** The most messages one sendmmsg/recvmmsg call (one scratch table) takes. */
export const MSG_BATCH = 64;
/** True where sendmmsg/recvmmsg exist (Linux, FreeBSD). */
export const HAVE_MMSG = mmsgSyms !== null;
/** Bytes per slot of the msghdr table: an mmsghdr where those exist, else a msghdr. */
const MSG_STRIDE = NET.MMSGHDR_SIZE > 0 ? NET.MMSGHDR_SIZE : NET.MSGHDR_SIZE;
// One ArrayBuffer holds the msghdr table and one iovec per slot.
const msgMem = new ArrayBuffer(MSG_BATCH * (MSG_STRIDE + 16));
const msg32 = new Uint32Array(msgMem);
// SAFETY: msgMem is never detached and this module keeps it alive, so its address holds;
// the kernel reads the table only during the synchronous send/recv call.
const msgBase = ptr(new Uint8Array(msgMem)) as number;
const IOV_AT = MSG_BATCH * MSG_STRIDE;
const MSG_WORDS = MSG_STRIDE >> 2;

/** Writes a pointer (as lo, hi u32 words) at byte offset `off` of the table. */
function putPtr(off: number, p: number): void {
  msg32[off >> 2] = p >>> 0;
  msg32[(off >> 2) + 1] = Math.floor(p / TWO32);
}

/**
 * Fills message slot `i` (0 ≤ i < MSG_BATCH): `len` bytes of `data`; the peer address at
 * `namePtr` (to send to: `nameLen` bytes; to receive into: its capacity; 0 for none: the
 * caller's ArrayBuffer-backed memory, its address taken once); ancillary data `control`
 * (`controlLen` bytes to send, or capacity to receive; ArrayBuffer-backed).
 *
 * SAFETY: `data`'s address is taken here: call this right before the send/recv call with
 * no allocation and no `.buffer` access in between (either could move a small array's
 * inline storage); the kernel drops every pointer when the call returns.
 */
export function setMsg(i: number, data: Uint8Array, len: number, namePtr: number, nameLen: number, control: Uint8Array | null, controlLen: number): void {
  const w = (i * MSG_STRIDE) >> 2;
  const iov = (IOV_AT >> 2) + i * 4;
  // Every word of the slot is written: fields, and 0 in the padding and the high halves,
  // so nothing of a previous message remains.
  for (let k = 0; k < MSG_WORDS; k++) msg32[w + k] = 0;
  putPtr(w << 2, nameLen === 0 ? 0 : namePtr);
  msg32[w + (NET.MSG_NAMELEN_OFF >> 2)] = nameLen;
  putPtr((w << 2) + NET.MSG_IOV_OFF, msgBase + (iov << 2));
  msg32[w + (NET.MSG_IOVLEN_OFF >> 2)] = 1;
  // SAFETY: `control` and `data` are the caller's, referenced by it through the syscall
  // that follows at once (see the doc comment); the kernel keeps no pointer past it.
  putPtr((w << 2) + NET.MSG_CONTROL_OFF, control === null || controlLen === 0 ? 0 : (ptr(control) as number));
  msg32[w + (NET.MSG_CONTROLLEN_OFF >> 2)] = control === null ? 0 : controlLen;
  // SAFETY: as `control` above: the caller holds `data` through the call that follows.
  putPtr(iov << 2, len === 0 ? 0 : (ptr(data) as number));
  msg32[iov + 2] = clampLen(len);
  msg32[iov + 3] = 0;
}

/** sendmsg of slot `i`: bytes sent or −errno. */
export function sendmsgAt(fd: number, i: number, flags: number): number {
  return ret(msgSyms.sendmsg(fd, msgBase + i * MSG_STRIDE, flags));
}

/** recvmsg into slot `i`: bytes received (or, with MSG_TRUNC on Linux, the datagram's length) or −errno. */
export function recvmsgAt(fd: number, i: number, flags: number): number {
  return ret(msgSyms.recvmsg(fd, msgBase + i * MSG_STRIDE, flags));
}

/** sendmmsg of slots 0…n−1: messages sent or −errno (HAVE_MMSG only). */
export function sendmmsgN(fd: number, n: number, flags: number): number {
  return ret(mmsgSyms!.sendmmsg(fd, msgBase, n, flags));
}

/** recvmmsg into slots 0…n−1 (no timeout): messages received or −errno (HAVE_MMSG only). */
export function recvmmsgN(fd: number, n: number, flags: number): number {
  return ret(mmsgSyms!.recvmmsg(fd, msgBase, n, flags, null));
}

/** After a call: slot `i`'s address length (the source's, after a recv). */
export function msgNameLen(i: number): number {
  return msg32[(i * MSG_STRIDE + NET.MSG_NAMELEN_OFF) >> 2]!;
}

/** After a recv: slot `i`'s ancillary data length. */
export function msgControlLen(i: number): number {
  return msg32[(i * MSG_STRIDE + NET.MSG_CONTROLLEN_OFF) >> 2]!;
}

/** After a recv: slot `i`'s msg_flags (MSG_TRUNC, MSG_CTRUNC). */
export function msgFlags(i: number): number {
  return msg32[(i * MSG_STRIDE + NET.MSG_FLAGS_OFF) >> 2]! | 0;
}

/** After sendmmsg/recvmmsg: slot `i`'s msg_len (bytes of that message). */
export function mmsgLen(i: number): number {
  return msg32[(i * MSG_STRIDE + NET.MMSG_LEN_OFF) >> 2]!;
}

/** getsockopt into `out`: the option's length or −errno. */
export function getsockoptBuf(fd: number, level: number, name: number, out: Uint8Array): number {
  lenScratch[0] = out.byteLength;
  const r = msgSyms.getsockopt(fd, level, name, out, lenScratch);
  return r < 0 ? -errnoView[0]! : lenScratch[0]!;
}

/** unlink(2) of a NUL-terminated path: 0 or −errno. */
export function unlink(path: Uint8Array): number {
  return ret(msgSyms.unlink(path));
}

/**
 * Copies `n` bytes from the address `src` into `dst` at `dstOff` (memcpy): a copy out of
 * memory reel mapped itself (the provided-buffer ring) without a view made per copy — a
 * `subarray` + `set` costs ~40 ns here, this ~15 ns. Throws RangeError when the bytes
 * would not fit `dst` (so it can never write past it).
 *
 * @example
 * ```ts
 * copyFromAddress(readBuf, 0, ringBase + offset, n);
 * ```
 */
export function copyFromAddress(dst: Uint8Array, dstOff: number, src: number, n: number): void {
  if (!(dstOff >= 0 && n >= 0 && dstOff + n <= dst.byteLength)) {
    throw new RangeError(`copyFromAddress: ${n} bytes at offset ${dstOff} do not fit a buffer of ${dst.byteLength}`);
  }
  if (n === 0) return;
  // SAFETY: `src` points into a mapping the caller keeps alive for this call, holding at
  // least `n` bytes; the pointer into `dst` is used only during this synchronous call.
  C.memcpy(ptr(dst, dstOff), src as Pointer, n);
}

/**
 * The address of `buf`'s first byte, for a struct field the kernel reads later (a
 * msghdr's msg_name). The caller keeps `buf` referenced for as long as the address is
 * in use: the GC does not move an ArrayBuffer's bytes but frees them once unreachable.
 *
 * @example
 * ```ts
 * const name = new Uint8Array(new ArrayBuffer(128));
 * const at = addressOf(name); // stable while `name` is referenced
 * ```
 */
export function addressOf(buf: Uint8Array): number {
  // SAFETY: the caller keeps `buf` (ArrayBuffer-backed, never detached) referenced while
  // the address is in use; an ArrayBuffer's bytes do not move.
  return ptr(buf) as number;
}
