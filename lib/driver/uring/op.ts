/**
 * The io_uring op table's entry type and its states (see driver/uring.ts for the state
 * machine). Kept apart so the driver and its poll bridge share it without an import cycle.
 *
 * Must never: hold logic; it is data and the sink contract.
 */
import type { Waker } from "../../future.ts";
import type { OwnedBuf } from "./buf.ts";

export const ST_FREE = 0;
export const ST_SUBMITTED = 1;
export const ST_DONE = 2;
export const ST_CANCELLING = 3;
/** Ops nobody waits for (ASYNC_CANCEL, LINK_TIMEOUT): freed at their final CQE. */
export const ST_DETACHED = 4;

/** An op whose result, if it completes unobserved, is an fd to close (accept, openat). */
export const K_FD = 1;
export const K_PLAIN = 0;

/** Who receives an op's CQEs besides its future: multishot consumers, and orphan handling. */
export interface OpSink {
  /** Every CQE of a multishot op while it is SUBMITTED (`final`: no more will come). */
  onCqe(op: UringOp, res: number, flags: number, final: boolean): void;
  /** A result (≥ 0) that arrived for an op whose future was cancelled. */
  orphan?(op: UringOp, res: number, flags: number): void;
}

/** One slot of the op table. See the module header for the state machine. */
export class UringOp {
  state = ST_FREE;
  /** user_data: index | gen << 20 (non-negative int32). */
  token = 0;
  /** The SQ position its SQE was written at (for cancel-before-submit). */
  pos = 0;
  res = 0;
  cflags = 0;
  waker: Waker | null = null;
  kind = K_PLAIN;
  multishot = false;
  background = false;
  /** Rewritten into a NOP before submission: its CQE carries no result. */
  neutered = false;
  sink: OpSink | null = null;
  /** Free for the sink's use (a registration token, a byte count). */
  tag = 0;
  // SAFETY: memory the kernel reads or writes for this op. Referenced from the op table
  // until the final CQE, including after cancel; returned to the pool only by release().
  buf: OwnedBuf | null = null;
  aux: object | null = null;

  constructor(readonly index: number) {}
}

/** What this kernel's io_uring offers reel, probed at setup. Tests may turn features off. */
export interface UringCaps {
  multishotAccept: boolean;
  /** Multishot recv over the driver's provided buffer ring (registration succeeded). */
  multishotRecv: boolean;
  deferTaskrun: boolean;
  probe: Uint8Array;
}

