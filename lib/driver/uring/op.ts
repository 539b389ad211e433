/**
 * The io_uring op table's entry type, its states, and the two contracts an op's owners
 * keep: the sink that receives its CQEs, and the fd owner that counts the ops naming its
 * fd (see uring/driver.ts for the state machine, uring/owner.ts for closing).
 *
 * Must never: hold logic; it is data and contracts.
 * Must never import: lib/driver/readiness/**
 * Must never import: lib/executor.ts, lib/task/**, lib/net/**, lib/fs/**, lib/interop/**
 */
import type { Waker } from "../../future.ts";
import type { OwnedBuf } from "./buf.ts";

/** A free slot. */
export const ST_FREE = 0;
/** Its SQE is written (maybe not yet submitted); a future may wait on it. */
export const ST_SUBMITTED = 1;
/** Its (final) CQE arrived; the result waits for its future. */
export const ST_DONE = 2;
/** Its future is gone; the op is freed at its final CQE. */
export const ST_CANCELLING = 3;
/** Ops nobody waits for (ASYNC_CANCEL, LINK_TIMEOUT): freed at their final CQE. */
export const ST_DETACHED = 4;
/** The states of an op (see uring/driver.ts). */
export type OpState = typeof ST_FREE | typeof ST_SUBMITTED | typeof ST_DONE | typeof ST_CANCELLING | typeof ST_DETACHED;

/** An op whose result is not an fd. */
export const K_PLAIN = 0;
/** An op whose result, if it completes unobserved, is an fd to close (accept, openat). */
export const K_FD = 1;
/** What an op's result is. */
export type OpKind = typeof K_PLAIN | typeof K_FD;

/** Who receives an op's CQEs besides its future: multishot consumers, and orphan handling. */
export interface OpSink {
  /** Every CQE of a multishot op while it is SUBMITTED (`final`: no more will come). */
  onCqe(op: UringOp, res: number, flags: number, final: boolean): void;
  /** A result (≥ 0) that arrived for an op whose future was cancelled. */
  orphan?(op: UringOp, res: number, flags: number): void;
}

/**
 * The object that owns the fd an op names: it counts such ops from their SQE to their
 * final CQE (or until the SQE was rewritten into a NOP), so that it knows when nothing
 * in the kernel can still act on its fd number (uring/owner.ts).
 */
export interface FdOwnerCount {
  /** One more op names this fd. */
  opStarted(): void;
  /** An op that named this fd is over (final CQE, or neutered before submission). */
  opFinished(): void;
}

/** One slot of the op table. See uring/driver.ts for the state machine. */
export class UringOp {
  state: OpState = ST_FREE;
  /** user_data: index | gen << 20 (non-negative int32); -1 while free (slab.ts). */
  token = 0;
  /** The SQ position its SQE was written at (for cancel-before-submit). */
  pos = 0;
  res = 0;
  cflags = 0;
  waker: Waker | null = null;
  kind: OpKind = K_PLAIN;
  multishot = false;
  /** Not counted as driver work: it may sit idle forever (the notify poll, an armed multishot recv). */
  background = false;
  /** Rewritten into a NOP before submission: its CQE carries no result. */
  neutered = false;
  sink: OpSink | null = null;
  /** The owner of the fd this op names, counted until the op is over (null: none). */
  owner: FdOwnerCount | null = null;
  /** Free for the sink's use (a registration token, a byte count). */
  tag = 0;
  // SAFETY: memory the kernel reads or writes for this op. Referenced from the op table
  // until the final CQE, including after cancel; returned to the pool only by release().
  buf: OwnedBuf | null = null;
  aux: object | null = null;
  /**
   * How many times this object has been handed out (driver.op() counts up; never wraps in
   * practice): a holder that kept the op past a moment the driver may have settled it
   * (its fd closed under it) compares this with what it saw, since the token's generation
   * repeats after 2048 uses of the slot.
   */
  uses = 0;

  constructor(readonly index: number) {}
}

/** What this kernel's io_uring offers reel, probed at setup. Tests may turn features off. */
export interface UringCaps {
  multishotAccept: boolean;
  /** Multishot recv over the driver's provided buffer ring (registration succeeded). */
  multishotRecv: boolean;
  /** IORING_ASYNC_CANCEL_FD (5.19): one SQE cancels every op on an fd. */
  cancelByFd: boolean;
  deferTaskrun: boolean;
  probe: Uint8Array;
}
