/**
 * Bindings to io_uring (Linux): the kernel ABI (opcodes, flags, struct offsets) and two
 * ways to set up, enter and register a ring:
 *
 * - liburing.so.2 (io_uring_queue_init_params, io_uring_submit_and_wait_timeout,
 *   io_uring_register_*), when the library is installed; liburing mmaps the rings and
 *   fills a `struct io_uring` whose pointers lib/driver/uring_ring.ts reads once.
 * - the raw syscalls io_uring_setup (425) / io_uring_enter (426) / io_uring_register
 *   (427) through libc's variadic `syscall()` declared with fixed 64-bit args (exact on
 *   x86-64 and arm64 Linux), plus mmap/munmap for the rings.
 *
 * SQEs and CQEs are never built here: liburing's prep/peek helpers are static inline, so
 * both paths fill SQEs and read CQEs in TS over views of the mapped rings (uring_ring.ts).
 *
 * Must never: throw (results are ≥ 0 or −errno), or dlopen liburing on a platform that
 * has no io_uring (every symbol table here is loaded lazily, on first use).
 * Must never import: lib/**
 */
import { dlopen, type Pointer } from "bun:ffi";
import { errno } from "./libc.ts";

// ---- opcodes (enum io_uring_op) ----
export const OP_NOP = 0;
export const OP_READV = 1;
export const OP_WRITEV = 2;
export const OP_FSYNC = 3;
export const OP_POLL_ADD = 6;
export const OP_TIMEOUT = 11;
export const OP_ACCEPT = 13;
export const OP_ASYNC_CANCEL = 14;
export const OP_LINK_TIMEOUT = 15;
export const OP_CONNECT = 16;
export const OP_OPENAT = 18;
export const OP_CLOSE = 19;
export const OP_STATX = 21;
export const OP_READ = 22;
export const OP_WRITE = 23;
export const OP_SEND = 26;
export const OP_RECV = 27;
export const OP_SHUTDOWN = 34;
/** IORING_OP_SOCKET (5.19): its presence also marks multishot accept and ASYNC_CANCEL_ANY. */
export const OP_SOCKET = 45;
/** One past the last opcode reel knows; the probe buffer holds this many entries at least. */
export const OP_KNOWN_LAST = 64;

// ---- SQE flags ----
export const IOSQE_IO_DRAIN = 1 << 1;
export const IOSQE_IO_LINK = 1 << 2;
export const IOSQE_IO_HARDLINK = 1 << 3;
export const IOSQE_ASYNC = 1 << 4;
export const IOSQE_BUFFER_SELECT = 1 << 5;

// ---- setup flags and features ----
export const SETUP_CQSIZE = 1 << 3;
export const SETUP_CLAMP = 1 << 4;
export const SETUP_SUBMIT_ALL = 1 << 7;
export const SETUP_COOP_TASKRUN = 1 << 8;
export const SETUP_TASKRUN_FLAG = 1 << 9;
export const SETUP_SINGLE_ISSUER = 1 << 12;
export const SETUP_DEFER_TASKRUN = 1 << 13;
/** No SQ index array (6.6): SQEs are consumed in ring order; `sq_off.array` is 0. */
export const SETUP_NO_SQARRAY = 1 << 16;
export const FEAT_SINGLE_MMAP = 1 << 0;
export const FEAT_NODROP = 1 << 1;
export const FEAT_FAST_POLL = 1 << 5;
export const FEAT_EXT_ARG = 1 << 8;

// ---- enter flags ----
export const ENTER_GETEVENTS = 1 << 0;
export const ENTER_EXT_ARG = 1 << 3;

// ---- per-op flags ----
export const ACCEPT_MULTISHOT = 1 << 0;
export const RECV_MULTISHOT = 1 << 1;
export const POLL_ADD_MULTI = 1 << 0;
export const ASYNC_CANCEL_ALL = 1 << 0;
/** Match by sqe->fd instead of user_data (5.19). */
export const ASYNC_CANCEL_FD = 1 << 1;
export const ASYNC_CANCEL_ANY = 1 << 2;
export const CQE_F_BUFFER = 1 << 0;
export const CQE_F_MORE = 1 << 1;
export const POLLIN = 0x001;

// ---- register opcodes ----
export const REGISTER_EVENTFD = 4;
export const REGISTER_PROBE = 8;
export const REGISTER_PBUF_RING = 22;
export const UNREGISTER_PBUF_RING = 23;
export const PROBE_OP_SUPPORTED = 1;

// ---- mmap offsets and flags ----
export const OFF_SQ_RING = 0;
export const OFF_CQ_RING = 0x8000000;
export const OFF_SQES = 0x10000000;
export const PROT_READ = 1;
export const PROT_WRITE = 2;
export const MAP_SHARED = 0x01;
export const MAP_PRIVATE = 0x02;
export const MAP_ANONYMOUS = 0x20;
export const MAP_POPULATE = 0x8000;

// ---- struct sizes and byte offsets ----
/** sizeof(struct io_uring_sqe) without SQE128. */
export const SQE_SIZE = 64;
/** sizeof(struct io_uring_cqe) without CQE32. */
export const CQE_SIZE = 16;
/** sizeof(struct io_uring_params). */
export const PARAMS_SIZE = 120;
/** sizeof(struct io_uring) in liburing 2.x (sq 104 + cq 88 + 24). */
export const LIBURING_RING_SIZE = 216;
/** struct io_uring_params, as u32 word indexes. */
export const P = {
  sqEntries: 0,
  cqEntries: 1,
  flags: 2,
  features: 5,
  sqHead: 10,
  sqTail: 11,
  sqRingMask: 12,
  sqRingEntries: 13,
  sqFlags: 14,
  sqDropped: 15,
  sqArray: 16,
  cqHead: 20,
  cqTail: 21,
  cqRingMask: 22,
  cqRingEntries: 23,
  cqOverflow: 24,
  cqCqes: 25,
} as const;
/** struct io_uring (liburing 2.x), byte offsets of the fields reel reads or writes. */
export const LR = {
  sqSqes: 56,
  sqSqeHead: 64,
  sqSqeTail: 68,
  sqRingSz: 72,
  sqRingPtr: 80,
  cqRingSz: 104 + 56,
  cqRingPtr: 104 + 64,
  flags: 192,
  ringFd: 196,
  features: 200,
} as const;
/** struct statx: byte offsets (linux/stat.h). */
export const STATX = {
  size: 0x100,
  mask: 0x00,
  mode: 0x1c,
  ino: 0x20,
  fileSize: 0x28,
  blocks: 0x30,
  mtimeSec: 0x70,
  mtimeNsec: 0x78,
} as const;
export const STATX_BASIC_STATS = 0x7ff;
export const AT_FDCWD = -100;
export const AT_EMPTY_PATH = 0x1000;

const SYS_SETUP = 425;
const SYS_ENTER = 426;
const SYS_REGISTER = 427;

/** True on Linux, where io_uring may exist (the kernel can still refuse it). */
export const HAVE_URING_ABI = process.platform === "linux";

type LibcSyms = {
  syscall: (...a: (number | bigint | null)[]) => number;
  mmap: (addr: null, len: number, prot: number, flags: number, fd: number, off: number) => Pointer | null;
  munmap: (addr: Pointer, len: number) => number;
};
let libcSyms: LibcSyms | null = null;

function sys(): LibcSyms {
  if (libcSyms === null) {
    libcSyms = dlopen("libc.so.6", {
      // Variadic in C; declared with fixed 64-bit args (see the module header).
      syscall: { args: ["i64", "i64", "i64", "i64", "i64", "i64", "i64"], returns: "i32" },
      mmap: { args: ["ptr", "u64", "i32", "i32", "i32", "i64"], returns: "ptr" },
      munmap: { args: ["ptr", "u64"], returns: "i32" },
    }).symbols as unknown as LibcSyms;
  }
  return libcSyms;
}

function ret(r: number): number {
  return r < 0 ? -errno() : r;
}

/** io_uring_setup(entries, params): the ring fd or −errno. `params` is PARAMS_SIZE bytes. */
export function setup(entries: number, params: Pointer): number {
  return ret(sys().syscall(SYS_SETUP, entries, params, 0, 0, 0, 0));
}

/**
 * io_uring_enter(fd, toSubmit, minComplete, flags, arg, argSize): SQEs consumed or −errno.
 * With ENTER_EXT_ARG, `arg` points at a struct io_uring_getevents_arg (24 bytes).
 */
export function enter(fd: number, toSubmit: number, minComplete: number, flags: number, arg: Pointer | 0, argSize: number): number {
  return ret(sys().syscall(SYS_ENTER, fd, toSubmit, minComplete, flags, arg, argSize));
}

/** io_uring_register(fd, opcode, arg, nrArgs): ≥ 0 or −errno. */
export function register(fd: number, opcode: number, arg: Pointer | 0, nrArgs: number): number {
  return ret(sys().syscall(SYS_REGISTER, fd, opcode, arg, nrArgs, 0, 0));
}

/** mmap of `len` bytes of `fd` at `offset` (fd -1 with MAP_ANONYMOUS): the address, or −errno. */
export function mmap(len: number, prot: number, flags: number, fd: number, offset: number): number {
  const p = sys().mmap(null, len, prot, flags, fd, offset);
  // MAP_FAILED is (void*)-1, which bun:ffi hands back as 2^64-1 rounded to a double.
  if (p === null || (p as number) >= 2 ** 63) return -errno();
  return p as number;
}

export function munmap(addr: number, len: number): number {
  return ret(sys().munmap(addr as Pointer, len));
}

type LiburingSyms = {
  io_uring_queue_init_params: (entries: number, ring: Pointer, params: Pointer) => number;
  io_uring_queue_exit: (ring: Pointer) => void;
  io_uring_submit_and_wait_timeout: (ring: Pointer, cqe: Pointer, waitNr: number, ts: Pointer | null, sig: null) => number;
  io_uring_submit: (ring: Pointer) => number;
  io_uring_register_probe: (ring: Pointer, probe: Pointer, nr: number) => number;
  io_uring_register_eventfd: (ring: Pointer, fd: number) => number;
  io_uring_register_buf_ring: (ring: Pointer, reg: Pointer, flags: number) => number;
  io_uring_unregister_buf_ring: (ring: Pointer, bgid: number) => number;
};
let liburingSyms: LiburingSyms | null | undefined;

/** liburing.so.2's entry points, or null when the library cannot be loaded. */
export function liburing(): LiburingSyms | null {
  if (liburingSyms !== undefined) return liburingSyms;
  try {
    liburingSyms = dlopen("liburing.so.2", {
      io_uring_queue_init_params: { args: ["u32", "ptr", "ptr"], returns: "i32" },
      io_uring_queue_exit: { args: ["ptr"], returns: "void" },
      io_uring_submit_and_wait_timeout: { args: ["ptr", "ptr", "u32", "ptr", "ptr"], returns: "i32" },
      io_uring_submit: { args: ["ptr"], returns: "i32" },
      io_uring_register_probe: { args: ["ptr", "ptr", "u32"], returns: "i32" },
      io_uring_register_eventfd: { args: ["ptr", "i32"], returns: "i32" },
      io_uring_register_buf_ring: { args: ["ptr", "ptr", "u32"], returns: "i32" },
      io_uring_unregister_buf_ring: { args: ["ptr", "i32"], returns: "i32" },
    }).symbols as unknown as LiburingSyms;
  } catch {
    liburingSyms = null;
  }
  return liburingSyms;
}

// ---- path ops and ftruncate (appended for lib/driver/uring/paths.ts) ----
/** IORING_OP_RENAMEAT (5.11): fd olddirfd, addr oldpath, len newdirfd, addr2 newpath. */
export const OP_RENAMEAT = 35;
/** IORING_OP_UNLINKAT (5.11): fd dirfd, addr path, op flags AT_REMOVEDIR for a directory. */
export const OP_UNLINKAT = 36;
/** IORING_OP_MKDIRAT (5.15): fd dirfd, addr path, len mode. */
export const OP_MKDIRAT = 37;
/** IORING_OP_SYMLINKAT (5.15): fd newdirfd, addr target, addr2 linkpath. */
export const OP_SYMLINKAT = 38;
/** IORING_OP_FTRUNCATE (6.9): fd, off = the new length. */
export const OP_FTRUNCATE = 55;
export const AT_SYMLINK_NOFOLLOW = 0x100;
export const AT_REMOVEDIR = 0x200;
/** statx mask: the basic fields and the birth time. */
export const STATX_BTIME = 0x800;
/** struct statx: byte offsets of the fields beyond {@link STATX}'s. */
export const STATX_MORE = {
  nlink: 0x10,
  uid: 0x14,
  gid: 0x18,
  atimeSec: 0x40,
  atimeNsec: 0x48,
  btimeSec: 0x50,
  btimeNsec: 0x58,
  ctimeSec: 0x60,
  ctimeNsec: 0x68,
  rdevMajor: 0x80,
  rdevMinor: 0x84,
  devMajor: 0x88,
  devMinor: 0x8c,
} as const;
