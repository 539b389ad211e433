/**
 * One io_uring instance: setup (through liburing.so.2 or the raw syscalls), typed-array
 * views over the mapped SQ ring, CQ ring and SQE array, SQE filling, one enter per turn,
 * and CQE reading. The driver (uring.ts) owns the op table; this file knows only slots.
 *
 * Invariants:
 * - Views are created once, at setup, over the kernel-shared mappings; nothing is
 *   allocated per SQE or CQE. The ring heads and tails are read and written with Atomics.
 * - `tail` (ours) ≥ `published` (what the kernel was told) ≥ the kernel's SQ head. SQEs in
 *   [published, tail) are written but not yet visible to the kernel: they can still be
 *   rewritten (a cancelled-before-submit op becomes a NOP, see `neuter`).
 * - On the liburing path, liburing's private `sqe_tail` is kept equal to `tail`, so its
 *   flush publishes exactly the SQEs written here.
 *
 * Must never: block when asked for a zero wait, publish a half-written SQE, or be used
 * after close() (the views point into unmapped memory then).
 * Must never import: lib/driver/readiness/**
 * Must never import: lib/executor.ts, lib/task/**, lib/net/**, lib/fs/**, lib/interop/**
 */
import { ptr, type Pointer } from "bun:ffi";
import * as U from "../../../ffi/uring.ts";
import * as libc from "../../../ffi/libc.ts";
import { EAGAIN, EBUSY, EINTR, ETIME } from "../../../ffi/errno.ts";
import { SysError } from "../../errors.ts";
import { selectPath, setupRing, wantNoSqArray, type RingOptions, type RingPath, type RingSetup } from "./setup.ts";

export { simulateSetupFailure, selectPath, type RingOptions, type RingPath } from "./setup.ts";

const TWO32 = 0x1_0000_0000;

/**
 * A mapped io_uring.
 *
 * @example
 * ```ts
 * const ring = Ring.open({ entries: 64, path: "raw" });
 * ring.prep(OP_NOP, -1, 0, 0, 0, 7);
 * ring.submitAndWait(-1);
 * const n = ring.ready(); // 1: ring.cqeUserData(0) === 7
 * ring.advance(n);
 * ring.close();
 * ```
 */
export class Ring {
  readonly fd: number;
  readonly path: RingPath;
  /** The setup flags the kernel accepted. */
  readonly flags: number;
  readonly features: number;
  readonly sqEntries: number;
  readonly cqEntries: number;
  private readonly sqMask: number;
  private readonly cqMask: number;
  // Views over kernel-shared memory, created once (see the module header).
  private readonly sq32: Uint32Array;
  private readonly cq32: Uint32Array;
  private readonly cqI32: Int32Array;
  private readonly sqe8: Uint8Array;
  private readonly sqe16: Uint16Array;
  private readonly sqe32: Uint32Array;
  private readonly sqHead: number;
  private readonly sqTail: number;
  private readonly cqHead: number;
  private readonly cqTail: number;
  private readonly cqes: number;
  /** Next SQE slot we write (free-running u32). */
  private tail = 0;
  /** Tail last made visible to the kernel. */
  private published = 0;
  /** CQ head we consumed up to (free-running u32). */
  private head = 0;
  private closed = false;
  // SAFETY: liburing keeps pointers into `lrStruct` (its struct io_uring) between calls;
  // the ArrayBuffer-backed view is held by this Ring until queue_exit in close().
  private readonly lrStruct: Uint8Array | null;
  private readonly lr32: Uint32Array | null;
  private readonly lrPtr: Pointer | null;
  // Raw path: the three mappings to unmap on close.
  private readonly maps: [number, number][] = [];
  // SAFETY: `ts` and `getevArg` are ArrayBuffer-backed and live as long as the Ring; the
  // kernel reads them only during the io_uring_enter call they are passed to.
  private readonly ts = new Int32Array(new ArrayBuffer(16));
  private readonly tsPtr: Pointer;
  private readonly getevArg = new Uint32Array(new ArrayBuffer(24));
  private readonly getevPtr: Pointer;
  private readonly cqeOut = new Uint8Array(new ArrayBuffer(8));

  private constructor(s: RingSetup) {
    this.fd = s.fd;
    this.path = s.path;
    this.flags = s.flags;
    this.features = s.features;
    this.sqEntries = s.sqEntries;
    this.cqEntries = s.cqEntries;
    this.sqMask = s.sqEntries - 1;
    this.cqMask = s.cqEntries - 1;
    this.sq32 = s.sq32;
    this.cq32 = s.cq32;
    this.cqI32 = new Int32Array(s.cq32.buffer, s.cq32.byteOffset, s.cq32.length);
    this.sqe8 = s.sqe8;
    this.sqe16 = new Uint16Array(s.sqe8.buffer, s.sqe8.byteOffset, s.sqe8.length >> 1);
    this.sqe32 = new Uint32Array(s.sqe8.buffer, s.sqe8.byteOffset, s.sqe8.length >> 2);
    this.sqHead = s.sqHead;
    this.sqTail = s.sqTail;
    this.cqHead = s.cqHead;
    this.cqTail = s.cqTail;
    this.cqes = s.cqes;
    this.lrStruct = s.lrStruct;
    this.lr32 = s.lrStruct === null ? null : new Uint32Array(s.lrStruct.buffer);
    // SAFETY: lrStruct is ArrayBuffer-backed and referenced by this Ring (see the field).
    this.lrPtr = s.lrStruct === null ? null : ptr(s.lrStruct);
    this.maps = s.maps;
    this.tail = this.published = Atomics.load(this.sq32, this.sqTail);
    this.head = Atomics.load(this.cq32, this.cqHead);
    // SAFETY: ts/getevArg are ArrayBuffer-backed fields of this Ring (see above).
    this.tsPtr = ptr(this.ts);
    this.getevPtr = ptr(this.getevArg);
    this.getevArg[2] = 8; // sigmask_sz = _NSIG / 8; no sigmask is passed
    const tp = this.tsPtr as number;
    this.getevArg[4] = tp >>> 0;
    this.getevArg[5] = Math.floor(tp / TWO32);
  }

  /** Sets up a ring; throws SysError("io_uring_setup") when the kernel refuses io_uring. */
  static open(opts: RingOptions = {}): Ring {
    const entries = opts.entries ?? 256;
    if (!Number.isInteger(entries) || entries < 1 || entries > 32768 || (entries & (entries - 1)) !== 0) {
      throw new RangeError(`Invalid io_uring entries ${entries}: must be a power of two 1-32768`);
    }
    const cq = opts.cqEntries ?? entries * 8;
    // REEL_URING_NO_SQARRAY=1 applies to raw-path rings (and picks the raw path when no
    // path is named); an explicit noSqArray: true on the liburing path is refused.
    const envNoSq = wantNoSqArray();
    const path = selectPath(opts.path ?? ((opts.noSqArray ?? envNoSq) && !process.env.REEL_URING ? "raw" : undefined));
    const noSq = opts.noSqArray ?? (envNoSq && path === "raw");
    return new Ring(setupRing(entries, cq, path, noSq));
  }

  /** Free SQ slots (before a flush is needed). */
  get space(): number {
    return this.sqEntries - ((this.tail - Atomics.load(this.sq32, this.sqHead)) >>> 0);
  }

  /** SQEs written but not yet handed to the kernel. */
  get pending(): number {
    return (this.tail - this.published) >>> 0;
  }

  /** The free-running position the next prep() will take (for `neuter`). */
  get position(): number {
    return this.tail;
  }

  /**
   * Writes one SQE (all other fields zero) and returns its word base, for the set*
   * helpers. The caller checks `space` first. addr/off are byte addresses / offsets
   * (−1 = "current file position" for off).
   */
  prep(opcode: number, fd: number, addr: number, len: number, off: number, userData: number): number {
    const slot = this.tail & this.sqMask;
    const w = slot << 4;
    const s = this.sqe32;
    s.fill(0, w, w + 16);
    this.sqe8[w << 2] = opcode;
    s[w + 1] = fd;
    if (off < 0) {
      s[w + 2] = 0xffff_ffff;
      s[w + 3] = 0xffff_ffff;
    } else {
      s[w + 2] = off >>> 0;
      s[w + 3] = Math.floor(off / TWO32);
    }
    s[w + 4] = addr >>> 0;
    s[w + 5] = Math.floor(addr / TWO32);
    s[w + 6] = len;
    s[w + 8] = userData;
    this.tail = (this.tail + 1) >>> 0;
    return w;
  }

  /** sqe->flags (IOSQE_*). */
  setSqeFlags(w: number, flags: number): void {
    this.sqe8[(w << 2) + 1] = flags;
  }

  /** sqe->ioprio (accept/recv multishot flags live here). */
  setIoprio(w: number, v: number): void {
    this.sqe16[(w << 1) + 1] = v;
  }

  /** The per-op flags word (msg_flags, open_flags, timeout_flags, cancel_flags, …). */
  setOpFlags(w: number, v: number): void {
    this.sqe32[w + 7] = v;
  }

  /** buf_group (with IOSQE_BUFFER_SELECT). */
  setBufGroup(w: number, g: number): void {
    this.sqe16[(w << 1) + 20] = g;
  }

  /** addr2 / off, as a pointer (accept's addrlen, statx's buffer). */
  setAddr2(w: number, p: number): void {
    this.sqe32[w + 2] = p >>> 0;
    this.sqe32[w + 3] = Math.floor(p / TWO32);
  }

  /**
   * Turns the not-yet-published SQE written at `position` into a NOP that keeps its
   * user_data and link flags: the op's CQE still arrives (res 0) and a linked chain stays
   * intact. Returns false when the SQE was already handed to the kernel.
   */
  neuter(position: number): boolean {
    if (((position - this.published) | 0) < 0) return false;
    const w = (position & this.sqMask) << 4;
    const keep = this.sqe8[(w << 2) + 1]! & (U.IOSQE_IO_LINK | U.IOSQE_IO_HARDLINK | U.IOSQE_IO_DRAIN);
    const ud = this.sqe32[w + 8]!;
    this.sqe32.fill(0, w, w + 16);
    this.sqe8[(w << 2) + 1] = keep;
    this.sqe32[w + 1] = -1;
    this.sqe32[w + 8] = ud;
    return true;
  }

  /** The first position not yet handed to the kernel (SQEs in [published, position) are ours). */
  get unpublished(): number {
    return this.published;
  }

  /** The fd field of the SQE written at `position`. */
  sqeFd(position: number): number {
    return this.sqe32[((position & this.sqMask) << 4) + 1]! | 0;
  }

  /** The opcode of the SQE written at `position`. */
  sqeOpcode(position: number): number {
    return this.sqe8[((position & this.sqMask) << 4) << 2]!;
  }

  /** The user_data (low 32 bits) of the SQE written at `position`. */
  sqeUserData(position: number): number {
    return this.sqe32[((position & this.sqMask) << 4) + 8]!;
  }

  /** Hands the written SQEs to the kernel without waiting. Returns how many it consumed. */
  submit(): number {
    if (this.pending === 0) return 0;
    if (this.lr32 !== null) {
      this.lr32[U.LR.sqSqeTail >> 2] = this.tail;
      const r = U.liburing()!.io_uring_submit(this.lrPtr!);
      this.published = this.tail;
      return this.enterResult(r);
    }
    return this.enterRaw(0, 0);
  }

  /**
   * The one enter of a driver turn: publishes every written SQE and waits for at least
   * one CQE for at most `waitMs` (-1 = no limit, 0 = do not wait, only reap).
   */
  submitAndWait(waitMs: number): number {
    if (this.lr32 !== null) return this.enterLiburing(waitMs);
    return this.enterRaw(waitMs === 0 ? 0 : 1, waitMs);
  }

  private setTimespec(ms: number): void {
    const sec = Math.floor(ms / 1000);
    this.ts[0] = sec;
    this.ts[1] = 0;
    this.ts[2] = (ms - sec * 1000) * 1_000_000;
    this.ts[3] = 0;
  }

  private enterLiburing(waitMs: number): number {
    this.lr32![U.LR.sqSqeTail >> 2] = this.tail;
    this.published = this.tail;
    // A zero wait is wait_nr 1 with a zero timeout: liburing then always enters with
    // GETEVENTS, which also runs DEFER_TASKRUN's deferred completions.
    if (waitMs >= 0) this.setTimespec(waitMs);
    // SAFETY: lrPtr/cqeOut/ts are ArrayBuffer-backed fields of this Ring.
    const r = U.liburing()!.io_uring_submit_and_wait_timeout(this.lrPtr!, ptr(this.cqeOut), 1, waitMs >= 0 ? this.tsPtr : null, null);
    return this.enterResult(r);
  }

  private enterRaw(minComplete: number, waitMs: number): number {
    const toSubmit = (this.tail - Atomics.load(this.sq32, this.sqHead)) >>> 0;
    if (this.tail !== this.published) {
      Atomics.store(this.sq32, this.sqTail, this.tail);
      this.published = this.tail;
    }
    let flags = minComplete > 0 || waitMs === 0 ? U.ENTER_GETEVENTS : 0;
    if (waitMs > 0) {
      this.setTimespec(waitMs);
      flags |= U.ENTER_EXT_ARG;
      return this.enterResult(U.enter(this.fd, toSubmit, minComplete, flags, this.getevPtr, 24));
    }
    return this.enterResult(U.enter(this.fd, toSubmit, minComplete, flags, 0, 0));
  }

  /** ETIME/EINTR/EAGAIN/EBUSY (CQ backed up) are normal ends of a turn; anything else throws. */
  private enterResult(r: number): number {
    if (r >= 0) return r;
    if (r === -ETIME || r === -EINTR || r === -EAGAIN || r === -EBUSY) return 0;
    throw new SysError(-r, "io_uring_enter");
  }

  /** CQEs ready to read. */
  ready(): number {
    return (Atomics.load(this.cq32, this.cqTail) - this.head) >>> 0;
  }

  /** The user_data (low 32 bits) of the i-th ready CQE. */
  cqeUserData(i: number): number {
    return this.cq32[this.cqes + (((this.head + i) & this.cqMask) << 2)]!;
  }

  cqeRes(i: number): number {
    return this.cqI32[this.cqes + (((this.head + i) & this.cqMask) << 2) + 2]!;
  }

  cqeFlags(i: number): number {
    return this.cq32[this.cqes + (((this.head + i) & this.cqMask) << 2) + 3]!;
  }

  /** Marks `n` CQEs consumed. */
  advance(n: number): void {
    this.head = (this.head + n) >>> 0;
    Atomics.store(this.cq32, this.cqHead, this.head);
  }

  /** IORING_REGISTER_PROBE: a byte per opcode, 1 when the kernel supports it. */
  probe(): Uint8Array {
    const nr = U.OP_KNOWN_LAST;
    const buf = new Uint8Array(new ArrayBuffer(16 + nr * 8));
    // SAFETY: `buf` is ArrayBuffer-backed and referenced here for the synchronous call.
    const p = ptr(buf);
    const r = this.lrPtr !== null ? U.liburing()!.io_uring_register_probe(this.lrPtr, p, nr) : U.register(this.fd, U.REGISTER_PROBE, p, nr);
    const out = new Uint8Array(nr);
    if (r < 0) return out; // pre-5.6 kernels: no probe; callers then assume the 5.1 basics only
    const len = Math.min(buf[1]!, nr);
    for (let i = 0; i < len; i++) {
      const op = buf[16 + i * 8]!;
      if (op < nr && (buf[16 + i * 8 + 2]! & U.PROBE_OP_SUPPORTED) !== 0) out[op] = 1;
    }
    return out;
  }

  /** IORING_REGISTER_EVENTFD: `efd` is signalled when CQEs (or deferred completions) are posted. */
  registerEventfd(efd: number): number {
    if (this.lrPtr !== null) return U.liburing()!.io_uring_register_eventfd(this.lrPtr, efd);
    const arg = new Int32Array(new ArrayBuffer(4));
    arg[0] = efd;
    // SAFETY: `arg` is ArrayBuffer-backed; the kernel copies the fd during the call.
    return U.register(this.fd, U.REGISTER_EVENTFD, ptr(arg), 1);
  }

  /**
   * IORING_REGISTER_PBUF_RING: registers the page-aligned ring of `entries` buffer
   * descriptors at `ringAddr` as buffer group `bgid`. ≥ 0 or −errno.
   */
  registerBufRing(ringAddr: number, entries: number, bgid: number): number {
    const reg = new Uint32Array(new ArrayBuffer(40)); // struct io_uring_buf_reg
    reg[0] = ringAddr >>> 0;
    reg[1] = Math.floor(ringAddr / TWO32);
    reg[2] = entries;
    reg[3] = bgid & 0xffff;
    // SAFETY: `reg` is ArrayBuffer-backed; the kernel copies it during the call.
    const p = ptr(reg);
    if (this.lrPtr !== null) return U.liburing()!.io_uring_register_buf_ring(this.lrPtr, p, 0);
    return U.register(this.fd, U.REGISTER_PBUF_RING, p, 1);
  }

  /** IORING_UNREGISTER_PBUF_RING for buffer group `bgid`. */
  unregisterBufRing(bgid: number): number {
    if (this.closed) return 0;
    if (this.lrPtr !== null) return U.liburing()!.io_uring_unregister_buf_ring(this.lrPtr, bgid);
    const reg = new Uint32Array(new ArrayBuffer(40));
    reg[3] = bgid & 0xffff;
    // SAFETY: as in registerBufRing.
    return U.register(this.fd, U.UNREGISTER_PBUF_RING, ptr(reg), 1);
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /** Unmaps and closes. The driver drains in-flight ops first (see UringDriver.close). */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.lrPtr !== null) {
      U.liburing()!.io_uring_queue_exit(this.lrPtr);
      return;
    }
    for (const [addr, len] of this.maps) U.munmap(addr, len);
    libc.close(this.fd);
  }
}

