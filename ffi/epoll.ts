/**
 * Bindings to epoll and eventfd (Linux).
 *
 * `struct epoll_event { u32 events; u64 data; }` is packed (12 bytes) on x86-64 and
 * naturally aligned (16 bytes) on other 64-bit targets; {@link EPOLL_EVENT_SIZE} and the
 * word offsets below follow the CPU. The driver reads events through one Uint32Array over
 * an ArrayBuffer allocated at setup: no per-event objects or DataViews.
 *
 * Only the low 32 bits of `data` carry reel's token; the high word is written as zero.
 *
 * Must never: throw (results are ≥ 0 or −errno), or be loaded on a platform without epoll
 * (lib/driver picks the backend before importing it).
 * Must never import: lib/**
 */
import { dlopen } from "bun:ffi";
import { errno } from "./libc.ts";

export const EPOLLIN = 0x001;
export const EPOLLPRI = 0x002;
export const EPOLLOUT = 0x004;
export const EPOLLERR = 0x008;
export const EPOLLHUP = 0x010;
export const EPOLLRDHUP = 0x2000;
export const EPOLLONESHOT = 1 << 30;
/** Edge-triggered. 1 << 31 is negative as an int32, which is what the u32 field wants. */
export const EPOLLET = 1 << 31;

export const EPOLL_CTL_ADD = 1;
export const EPOLL_CTL_DEL = 2;
export const EPOLL_CTL_MOD = 3;
export const EPOLL_CLOEXEC = 0o2000000;

export const EFD_NONBLOCK = 0o4000;
export const EFD_CLOEXEC = 0o2000000;

/** sizeof(struct epoll_event): packed on x86-64. */
export const EPOLL_EVENT_SIZE = process.arch === "x64" ? 12 : 16;
/** Index (in u32 words) of `data`'s low word within one event. */
export const EPOLL_DATA_WORD = process.arch === "x64" ? 1 : 2;
/** Stride of one event in u32 words. */
export const EPOLL_EVENT_WORDS = EPOLL_EVENT_SIZE / 4;

const SYMBOLS = {
  epoll_create1: { args: ["i32"], returns: "i32" },
  epoll_ctl: { args: ["i32", "i32", "i32", "ptr"], returns: "i32" },
  epoll_wait: { args: ["i32", "ptr", "i32", "i32"], returns: "i32" },
  eventfd: { args: ["u32", "i32"], returns: "i32" },
} as const;

/** True where epoll exists; elsewhere nothing is loaded and lib/driver never builds an epoll poller. */
export const HAVE_EPOLL = process.platform === "linux";
// Loaded only on Linux so that importing this module elsewhere is harmless.
const C = (HAVE_EPOLL ? dlopen("libc.so.6", SYMBOLS).symbols : null)!;

function ret(r: number): number {
  return r < 0 ? -errno() : r;
}

export function epollCreate(flags: number): number {
  return ret(C.epoll_create1(flags));
}

// One event for epoll_ctl; only held during the call.
const ctlEvent = new Uint32Array(new ArrayBuffer(16));

/** epoll_ctl with an event of `events` bits carrying `token` in data's low word. */
export function epollCtl(epfd: number, op: number, fd: number, events: number, token: number): number {
  ctlEvent[0] = events >>> 0;
  ctlEvent[EPOLL_DATA_WORD] = token >>> 0;
  ctlEvent[EPOLL_DATA_WORD + 1] = 0;
  return ret(C.epoll_ctl(epfd, op, fd, ctlEvent));
}

/**
 * epoll_wait into `events` (a Uint32Array over ≥ max × EPOLL_EVENT_SIZE bytes, ArrayBuffer-
 * backed): the number of events or −errno.
 */
export function epollWait(epfd: number, events: Uint32Array, max: number, timeoutMs: number): number {
  return ret(C.epoll_wait(epfd, events, max, timeoutMs));
}

export function eventfd(initval: number, flags: number): number {
  return ret(C.eventfd(initval, flags));
}
