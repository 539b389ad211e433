/**
 * Copying between one owned buffer and a caller's buffer or list of buffers (readv/writev
 * style), for the completion backend, which moves bytes through memory it owns.
 *
 * Must never: copy more than the destination holds, or allocate beyond the views it makes.
 * Must never import: lib/driver/readiness/**
 * Must never import: lib/executor.ts, lib/task/**, lib/net/**, lib/fs/**, lib/interop/**
 */
import { IOV_BATCH } from "../../../ffi/libc.ts";

/** Bytes the op should move: buf's length, or the iovecs' total. */
export function wantedLen(buf: Uint8Array | null, bufs: readonly Uint8Array[]): number {
  if (buf !== null) return buf.byteLength;
  let n = 0;
  for (let i = 0; i < bufs.length && i < IOV_BATCH; i++) n += bufs[i]!.byteLength;
  return n;
}

/** Copies `n` bytes from src[off…] into buf (or across bufs); returns how many fit. */
export function scatter(src: Uint8Array, off: number, n: number, buf: Uint8Array | null, bufs: readonly Uint8Array[]): number {
  if (buf !== null) {
    const k = n < buf.byteLength ? n : buf.byteLength;
    buf.set(src.subarray(off, off + k));
    return k;
  }
  let done = 0;
  for (let i = 0; i < bufs.length && done < n; i++) {
    const b = bufs[i]!;
    const k = n - done < b.byteLength ? n - done : b.byteLength;
    b.set(src.subarray(off + done, off + done + k));
    done += k;
  }
  return done;
}

/** Copies up to `len` bytes of buf (or the iovecs, in order) into dst. */
export function gather(dst: Uint8Array, len: number, buf: Uint8Array | null, bufs: readonly Uint8Array[]): void {
  if (buf !== null) {
    dst.set(len === buf.byteLength ? buf : buf.subarray(0, len));
    return;
  }
  let done = 0;
  for (let i = 0; i < bufs.length && done < len; i++) {
    const b = bufs[i]!;
    const k = len - done < b.byteLength ? len - done : b.byteLength;
    dst.set(k === b.byteLength ? b : b.subarray(0, k), done);
    done += k;
  }
}
