/**
 * Ancillary data (struct cmsghdr) for SCM_RIGHTS: encoding the fds a sendmsg passes and
 * decoding the ones a recvmsg delivered. Pure data, like ffi/sockaddr.ts: the layout is
 * a parameter, so the BSD encodings can be checked on Linux.
 *
 * Layout: `cmsg_len` (a size_t on Linux, a socklen_t on the BSDs), `cmsg_level`,
 * `cmsg_type`, then the data at CMSG_DATA (16 bytes in on Linux and FreeBSD, 12 on
 * Darwin); each header starts at the previous one's length rounded up to CMSG_ALIGN.
 * All supported CPUs are little-endian.
 *
 * Must never: call libc, or read past `len` (a header that claims more than is there ends
 * the walk).
 * Must never import: lib/**, ffi/libc.ts, bun:ffi
 */
import { NET, SYS, type NetConstants } from "./constants.ts";

/** Linux's SCM_MAX_FD: the most fds one SCM_RIGHTS message carries. */
export const MAX_FDS_PER_MSG = 253;

function align(n: number, k: NetConstants): number {
  return (n + k.CMSG_ALIGN - 1) & ~(k.CMSG_ALIGN - 1);
}

/**
 * CMSG_SPACE(nfds × 4): the control buffer room for one SCM_RIGHTS message of `nfds` fds.
 *
 * @example
 * ```ts
 * const control = new Uint8Array(new ArrayBuffer(rightsSpace(MAX_FDS_PER_MSG)));
 * ```
 */
export function rightsSpace(nfds: number, k: NetConstants = NET): number {
  return k.CMSG_HDR + align(nfds * 4, k);
}

function putU32(b: Uint8Array, at: number, v: number): void {
  b[at] = v & 0xff;
  b[at + 1] = (v >>> 8) & 0xff;
  b[at + 2] = (v >>> 16) & 0xff;
  b[at + 3] = v >>> 24;
}

function getU32(b: Uint8Array, at: number): number {
  return (b[at]! | (b[at + 1]! << 8) | (b[at + 2]! << 16) | (b[at + 3]! << 24)) >>> 0;
}

/**
 * Encodes one SCM_RIGHTS message carrying `fds` into `out`; returns msg_controllen.
 *
 * @example
 * ```ts
 * const control = new Uint8Array(new ArrayBuffer(rightsSpace(1)));
 * const len = encodeRights(control, [fd]);
 * ```
 */
export function encodeRights(out: Uint8Array, fds: readonly number[], k: NetConstants = NET): number {
  const space = rightsSpace(fds.length, k);
  out.fill(0, 0, space);
  const cmsgLen = k.CMSG_HDR + fds.length * 4;
  putU32(out, 0, cmsgLen); // the high word of Linux's size_t stays 0
  putU32(out, k.CMSG_LEN_SIZE, SYS.SOL_SOCKET);
  putU32(out, k.CMSG_LEN_SIZE + 4, k.SCM_RIGHTS);
  for (let i = 0; i < fds.length; i++) putU32(out, k.CMSG_HDR + i * 4, fds[i]!);
  return space;
}

/**
 * Appends to `into` every fd of the SCM_RIGHTS messages in `control[0..len)`; returns how
 * many. Other ancillary messages are skipped.
 *
 * @example
 * ```ts
 * const fds: number[] = [];
 * decodeRights(control, msg.controlLen, fds);
 * ```
 */
export function decodeRights(control: Uint8Array, len: number, into: number[], k: NetConstants = NET): number {
  let n = 0;
  for (let off = 0; off + k.CMSG_HDR <= len; ) {
    const cmsgLen = getU32(control, off);
    if (cmsgLen < k.CMSG_HDR || off + cmsgLen > len) break;
    const level = getU32(control, off + k.CMSG_LEN_SIZE);
    const type = getU32(control, off + k.CMSG_LEN_SIZE + 4);
    if (level === SYS.SOL_SOCKET && type === k.SCM_RIGHTS) {
      const count = (cmsgLen - k.CMSG_HDR) >>> 2;
      for (let i = 0; i < count; i++) into.push(getU32(control, off + k.CMSG_HDR + i * 4) | 0);
      n += count;
    }
    off += align(cmsgLen, k);
  }
  return n;
}
