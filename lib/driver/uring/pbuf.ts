/**
 * A provided buffer ring (IORING_REGISTER_PBUF_RING, Linux 5.19+): `count` buffers of
 * `size` bytes that the kernel picks from when an op is submitted with
 * IOSQE_BUFFER_SELECT and this ring's buffer group, as multishot recv is (io/uring_recv.ts).
 * One ring per driver, shared by all its sockets.
 *
 * Layout: the ring is `count` struct io_uring_buf entries (addr u64, len u32, bid u16,
 * resv u16); the ring's tail is the u16 at byte 14, overlaying entry 0's resv. The kernel
 * consumes from its head; we add at the tail and publish with a release store. Both the
 * ring and the buffers are anonymous mmaps (page-aligned, as the kernel requires of the
 * ring; lazily backed, so an idle driver costs only the pages receives touched).
 *
 * Ownership (the invariant everything else relies on): a buffer id is in exactly one of
 * two places: the ring (the kernel's: it may write into the buffer at any moment), or
 * held by us (named by a CQE with IORING_CQE_F_BUFFER, until {@link BufRing.recycle}).
 * `held` counts the second set, so tests can check every buffer came back.
 *
 * Must never: recycle a buffer id twice or before its CQE named it, unmap while the
 * kernel may still pick a buffer (close() unregisters first and the driver closes it only
 * after every op's final CQE), or throw from open() (it returns −errno: the caller then
 * falls back to single-shot recv).
 * Must never import: lib/driver/readiness/**
 * Must never import: lib/executor.ts, lib/task/**, lib/net/**, lib/fs/**, lib/interop/**
 */
import { toArrayBuffer, type Pointer } from "bun:ffi";
import * as U from "../../../ffi/uring.ts";
import type { Ring } from "./ring.ts";

/** Defaults: 256 buffers × 16 KiB (4 MiB of address space, touched only as used). */
export const PBUF_COUNT = 256;
export const PBUF_SIZE = 16 * 1024;
const ENTRY = 16;
const TWO32 = 0x1_0000_0000;

/**
 * A registered provided-buffer ring.
 *
 * @example
 * ```ts
 * const br = BufRing.open(driver.ring, 0);
 * if (typeof br !== "number") {
 *   // … a CQE names buffer `bid` with `n` bytes: br.bytes.subarray(br.offset(bid), br.offset(bid) + n)
 *   br.recycle(bid);
 *   br.close();
 * }
 * ```
 */
export class BufRing {
  /** Every buffer, back to back: buffer `bid` starts at bid * size. */
  readonly bytes: Uint8Array;
  /** Buffer ids handed to us by CQEs and not yet recycled. */
  held = 0;
  private readonly ring16: Uint16Array;
  private readonly ring32: Uint32Array;
  private readonly mask: number;
  private tail = 0;
  private closed = false;

  private constructor(
    private readonly uring: Ring,
    readonly bgid: number,
    readonly count: number,
    readonly size: number,
    private readonly ringAddr: number,
    private readonly bufAddr: number,
  ) {
    // SAFETY: both regions are our anonymous mmaps, unmapped only by close(), after which
    // the views are never touched.
    this.ring16 = new Uint16Array(toArrayBuffer(ringAddr as Pointer, 0, count * ENTRY));
    this.ring32 = new Uint32Array(this.ring16.buffer);
    // SAFETY: as above; the kernel writes here only into buffers that are in the ring.
    this.bytes = new Uint8Array(toArrayBuffer(bufAddr as Pointer, 0, count * size));
    this.mask = count - 1;
    for (let b = 0; b < count; b++) this.put(b);
    this.publish();
  }

  /** Maps and registers a ring; returns it, or −errno when the kernel (or the mmap) refuses. */
  static open(uring: Ring, bgid: number, count = PBUF_COUNT, size = PBUF_SIZE): BufRing | number {
    if ((count & (count - 1)) !== 0 || count > 32768) throw new RangeError(`Invalid buffer ring count ${count}: must be a power of two ≤ 32768`);
    const prot = U.PROT_READ | U.PROT_WRITE;
    const flags = U.MAP_PRIVATE | U.MAP_ANONYMOUS;
    const ringAddr = U.mmap(count * ENTRY, prot, flags, -1, 0);
    if (ringAddr < 0) return ringAddr;
    const bufAddr = U.mmap(count * size, prot, flags, -1, 0);
    if (bufAddr < 0) {
      U.munmap(ringAddr, count * ENTRY);
      return bufAddr;
    }
    const r = uring.registerBufRing(ringAddr, count, bgid);
    if (r < 0) {
      U.munmap(bufAddr, count * size);
      U.munmap(ringAddr, count * ENTRY);
      return r;
    }
    return new BufRing(uring, bgid, count, size, ringAddr, bufAddr);
  }

  /** Byte offset of buffer `bid` in {@link bytes}. */
  offset(bid: number): number {
    return bid * this.size;
  }

  /** Address of buffer `bid`'s first byte (valid until close()): for copies without a view. */
  address(bid: number): number {
    return this.bufAddr + bid * this.size;
  }

  /** Buffers the kernel can pick from right now. */
  get available(): number {
    return this.count - this.held;
  }

  /** Records that a CQE handed buffer `bid` to us. */
  take(): void {
    this.held++;
  }

  /** Gives buffer `bid` back to the kernel (its bytes were consumed or dropped). */
  recycle(bid: number): void {
    if (this.closed) return;
    this.held--;
    this.put(bid);
    this.publish();
  }

  private put(bid: number): void {
    const w = (this.tail & this.mask) << 2;
    const a = this.bufAddr + bid * this.size;
    const s = this.ring32;
    s[w] = a >>> 0;
    s[w + 1] = Math.floor(a / TWO32);
    s[w + 2] = this.size;
    // bid is the u16 at byte 12; byte 14 of entry 0 is the ring tail, never written here.
    this.ring16[(w << 1) + 6] = bid;
    this.tail = (this.tail + 1) & 0xffff;
  }

  private publish(): void {
    Atomics.store(this.ring16, 7, this.tail);
  }

  /**
   * Unregisters and unmaps. `keepMemory`: unregister only, leaving the mappings (the
   * driver could not drain every op, so the kernel might still write into a buffer).
   */
  close(keepMemory = false): void {
    if (this.closed) return;
    this.closed = true;
    this.uring.unregisterBufRing(this.bgid);
    if (keepMemory) return;
    U.munmap(this.bufAddr, this.count * this.size);
    U.munmap(this.ringAddr, this.count * ENTRY);
  }
}
