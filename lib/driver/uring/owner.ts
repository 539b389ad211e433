/**
 * Closing an fd on io_uring: the one place that decides when an fd's number may go back
 * to the process. Sockets (socket.ts) and files (files.ts) both extend {@link UringFdOwner}.
 *
 * The hazard: io_uring resolves an SQE's fd number when the kernel *issues* the request —
 * at submission for most ops, only when its turn comes for a link in a chain. An SQE still
 * in our submission queue, or a link waiting behind its head, would act on whatever file
 * the number names by then: after close(), the next owner of the number.
 *
 * The rule, in order, when an owner closes:
 * 1. Every SQE naming the fd that the kernel has not seen is rewritten into a NOP (the
 *    op's CQE still arrives and settles it as cancelled).
 * 2. If ops naming the fd are in the kernel, one ASYNC_CANCEL matching the fd (all of its
 *    ops, IORING_ASYNC_CANCEL_FD) is submitted at once and the completions are reaped
 *    right here, without waiting: poll-driven ops (recv, accept, send on a full socket,
 *    poll) end synchronously, so a peer sees FIN and a port is free before close()
 *    returns — no extra driver turn needed.
 * 3. If none is left, the fd is closed now. Otherwise (a file op a kernel worker is
 *    running, a kernel without cancel-by-fd) the number is pinned (lib/driver/retire.ts)
 *    and released when the last op's final CQE arrives.
 *
 * Invariants: `kernelOps` counts ops naming this fd from their SQE to their final CQE
 * (or until rewritten into a NOP); a pinned number is released exactly once.
 *
 * Must never: close(2) the number while an op that names it may still be issued, or reap
 * re-entrantly (inside the driver's own reap the owner pins instead).
 */
import * as libc from "../../../ffi/libc.ts";
import { EINTR } from "../../../ffi/errno.ts";
import { SysError } from "../../errors.ts";
import type { FdOwnerCount } from "./op.ts";
import type { UringDriver } from "./driver.ts";

/**
 * The fd-owning half of a uring socket or file.
 *
 * @example
 * ```ts
 * class MyFd extends UringFdOwner {
 *   close(): void {
 *     // cancel this object's own ops first, then:
 *     this.release();
 *   }
 * }
 * ```
 */
export abstract class UringFdOwner implements FdOwnerCount {
  /** Ops naming this fd that the kernel may still issue or run (see the module header). */
  kernelOps = 0;
  /** The number pinned at close while ops end; -1 otherwise. */
  private pinned = -1;

  constructor(
    readonly driver: UringDriver,
    /** A valid fd owned by this object, or -1 once closed. */
    public fd: number,
  ) {}

  opStarted(): void {
    this.kernelOps++;
  }

  opFinished(): void {
    if (--this.kernelOps === 0 && this.pinned >= 0) {
      this.driver.retirer.release(this.pinned);
      this.pinned = -1;
    }
  }

  /**
   * Steps 1–3 of the module header: the fd is -1 afterwards. Throws SysError only for
   * close(2)'s own failure.
   */
  protected release(): void {
    const fd = this.fd;
    if (fd < 0) return;
    this.fd = -1;
    const d = this.driver;
    if (this.kernelOps > 0 && !d.isClosed) {
      d.neuterFd(fd);
      if (this.kernelOps > 0) d.cancelFd(fd, this);
    }
    if (this.kernelOps > 0 && !d.isClosed) {
      d.retirer.pin(fd);
      this.pinned = fd;
      return;
    }
    const r = libc.close(fd);
    // EINTR on close still releases the fd on Linux and the BSDs: do not retry.
    if (r < 0 && r !== -EINTR) throw new SysError(-r, "close");
  }

  /**
   * Steps 1 and 2 without the close, for an fd handed back to its owner open
   * (AsyncFd.intoInner): every op naming it is neutered or cancelled and reaped where the
   * kernel allows, and the number is returned. An op the kernel still holds is settled at
   * its CQE; it holds the same file (not the number, which is not released here).
   */
  protected releaseOpen(): number {
    const fd = this.fd;
    if (fd < 0) return -1;
    this.fd = -1;
    const d = this.driver;
    if (this.kernelOps > 0 && !d.isClosed) {
      d.neuterFd(fd);
      if (this.kernelOps > 0) d.cancelFd(fd, this);
    }
    return fd;
  }
}
