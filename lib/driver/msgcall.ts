/**
 * One sendmsg/recvmsg batch as a synchronous, non-blocking syscall: the readiness
 * backends' message op (readiness/fd.ts), and io_uring's fast path for datagram sockets
 * (uring/msg.ts), where a send or a receive that can complete at once does so without a
 * trip through the ring.
 *
 * A batch is one sendmmsg/recvmmsg where those exist, else a loop of sendmsg/recvmsg that
 * stops at the first failure; an error after at least one message is handed back in
 * `err` (the caller reports it on its next call), never dropped.
 *
 * Must never: block (callers pass non-blocking fds, or MSG_DONTWAIT), or hold a pointer to
 * a caller's buffer past the call (libc.setMsg's SAFETY note).
 */
import * as libc from "../../ffi/libc.ts";
import { EAGAIN, EINTR } from "../../ffi/errno.ts";
import type { Msg } from "./fd.ts";

/**
 * Moves msgs[0..count) (count ≤ libc.MSG_BATCH): how many (≥ 1), or −errno when the first
 * failed. `err[0]` receives an error that stopped a batch after ≥ 1 message.
 *
 * @example
 * ```ts
 * const held = new Int32Array(1);
 * const r = attemptMsgs(fd, true, msgs, 8, MSG_DONTWAIT, held); // datagrams received, or −EAGAIN
 * ```
 */
export function attemptMsgs(fd: number, recv: boolean, msgs: readonly Msg[], count: number, flags: number, err: Int32Array): number {
  if (count > 1 && libc.HAVE_MMSG) {
    for (let i = 0; i < count; i++) fill(i, msgs[i]!, recv);
    const r = recv ? libc.recvmmsgN(fd, count, flags) : libc.sendmmsgN(fd, count, flags);
    for (let i = 0; i < r; i++) collect(i, msgs[i]!, recv, libc.mmsgLen(i));
    return r;
  }
  for (let i = 0; i < count; i++) {
    const m = msgs[i]!;
    fill(0, m, recv);
    const r = recv ? libc.recvmsgAt(fd, 0, flags) : libc.sendmsgAt(fd, 0, flags);
    if (r < 0) {
      if (i === 0) return r;
      if (r !== -EAGAIN && r !== -EINTR) err[0] = r;
      return i;
    }
    collect(0, m, recv, r);
  }
  return count;
}

/** Fills scratch slot `i` from `m` (see libc.setMsg's SAFETY note: the call follows at once). */
function fill(i: number, m: Msg, recv: boolean): void {
  const control = m.control;
  const clen = control === null ? 0 : recv ? control.byteLength : m.controlLen;
  libc.setMsg(i, m.buf, m.buf.byteLength, m.addrPtr, recv ? m.addr.byteLength : m.addrLen, control, clen);
}

/** Reads slot `i`'s results into `m`; `r` is the call's (or msg_len's) byte count. */
function collect(i: number, m: Msg, recv: boolean, r: number): void {
  const cap = m.buf.byteLength;
  m.len = r < cap ? r : cap;
  m.size = r;
  if (!recv) return;
  m.addrLen = libc.msgNameLen(i);
  m.controlLen = m.control === null ? 0 : libc.msgControlLen(i);
  m.flags = libc.msgFlags(i);
}
