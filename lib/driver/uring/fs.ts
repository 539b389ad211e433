/**
 * File ops on the io_uring backend: SQE descriptions ({@link OpSpec}) for openat, read,
 * write, statx, fsync and close, with the owned memory each one needs. lib/fs/index.ts
 * turns them into futures; io/uring_ops.ts runs them (and chains them with IO_LINK).
 *
 * Ownership: every pointer handed to the kernel comes from memory the op holds (`buf`
 * or `aux`): a NUL-terminated path, a statx buffer, an owned data buffer. A write copies
 * the caller's bytes into its owned buffer here, before submission.
 *
 * Must never: pass a pointer into the caller's arrays, or read past `len` of a buffer.
 */
import { ptr } from "bun:ffi";
import * as U from "../../../ffi/uring.ts";
import { K_FD } from "./driver.ts";
import type { BufferPool } from "./buf.ts";
import type { OpSpec } from "./ops.ts";

/** Largest read or write one op makes (a larger request is a short transfer). */
export const CHUNK = 1024 * 1024;

const encoder = new TextEncoder();

/** A NUL-terminated, ArrayBuffer-backed copy of `path`. */
export function cPath(path: string): Uint8Array {
  const bytes = encoder.encode(path);
  const out = new Uint8Array(new ArrayBuffer(bytes.length + 1));
  out.set(bytes);
  return out;
}

/** openat(AT_FDCWD, path, flags, mode): resolves to the fd (closed if cancelled after it opened). */
export function openSpec(path: string, flags: number, mode: number): OpSpec {
  const p = cPath(path);
  // SAFETY: `p` is ArrayBuffer-backed and becomes the op's aux (held until the CQE).
  return { opcode: U.OP_OPENAT, fd: U.AT_FDCWD, addr: ptr(p) as number, len: mode, opFlags: flags, aux: p, kind: K_FD, syscall: "openat" };
}

/** read(fd, ≤ CHUNK bytes, at pos or the current position when pos < 0) into an owned buffer. */
export function readSpec(pool: BufferPool, fd: number, len: number, pos: number): OpSpec {
  const n = len < CHUNK ? len : CHUNK;
  const ob = pool.get(n);
  return { opcode: U.OP_READ, fd, addr: ob.addr, len: n, off: pos, buf: ob, syscall: "read" };
}

/** write(fd, a copy of data's first ≤ CHUNK bytes, at pos or the current position when pos < 0). */
export function writeSpec(pool: BufferPool, fd: number, data: Uint8Array, pos: number): OpSpec {
  const n = data.byteLength < CHUNK ? data.byteLength : CHUNK;
  const ob = pool.get(n);
  ob.bytes.set(n === data.byteLength ? data : data.subarray(0, n));
  return { opcode: U.OP_WRITE, fd, addr: ob.addr, len: n, off: pos, buf: ob, syscall: "write" };
}

/** statx of `path`, or of `fd` itself when path is null (AT_EMPTY_PATH). */
export function statxSpec(fd: number, path: string | null): [OpSpec, Uint8Array] {
  const p = cPath(path ?? "");
  const out = new Uint8Array(new ArrayBuffer(U.STATX.size));
  // SAFETY: path and result buffer are ArrayBuffer-backed and held as the op's aux.
  const spec: OpSpec = {
    opcode: U.OP_STATX,
    fd: path === null ? fd : U.AT_FDCWD,
    // SAFETY: `p` is held as the op's aux until its CQE.
    addr: ptr(p) as number,
    len: U.STATX_BASIC_STATS,
    // SAFETY: `out` is held as the op's aux until its CQE.
    addr2: ptr(out) as number,
    opFlags: path === null ? U.AT_EMPTY_PATH : 0,
    aux: [p, out],
    syscall: "statx",
  };
  return [spec, out];
}

/** fsync / fdatasync. */
export function fsyncSpec(fd: number, datasync: boolean): OpSpec {
  return { opcode: U.OP_FSYNC, fd, opFlags: datasync ? 1 : 0, syscall: "fsync" };
}

/** close(fd) through the ring. */
export function closeSpec(fd: number): OpSpec {
  return { opcode: U.OP_CLOSE, fd, syscall: "close" };
}

/** The fields of a struct statx that reel reports. */
export interface StatxFields {
  size: number;
  mode: number;
  ino: number;
  blocks: number;
  mtimeMs: number;
}

/** Decodes the statx buffer (little-endian u64s as two u32 words). */
export function decodeStatx(b: Uint8Array): StatxFields {
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const u64 = (o: number) => v.getUint32(o, true) + v.getUint32(o + 4, true) * 0x1_0000_0000;
  const sec = u64(U.STATX.mtimeSec);
  return {
    size: u64(U.STATX.fileSize),
    mode: v.getUint16(U.STATX.mode, true),
    ino: u64(U.STATX.ino),
    blocks: u64(U.STATX.blocks),
    mtimeMs: sec * 1000 + v.getUint32(U.STATX.mtimeNsec, true) / 1e6,
  };
}
