/**
 * The readiness driver: a Poller (epoll, poll or kqueue) feeding the registry, sockets as
 * {@link ReadinessFd}s, regular files on the blocking pool. kernel → poller → registry →
 * waker: one turn is one `wait` of the poller, its events dispatched.
 *
 * Invariants: every fd handed out by `socket()` is registered until its close(); the pool
 * client exists only once a file op ran, and is closed with the driver (after its running
 * calls ended), as is every number pinned for a closed file.
 *
 * Must never: block when asked for a zero wait, or touch the poller after close().
 */
import { Driver } from "../driver.ts";
import { Registry } from "../registry.ts";
import { Retirer } from "../retire.ts";
import type { FileFd, FileFuture, IoFd, PathOps, StatFields } from "../fd.ts";
import type { Poller } from "./poller.ts";
import { ReadinessFd } from "./fd.ts";
import { PoolClient } from "./pool.ts";
import { PoolFile, PoolPaths, openOnPool, statOnPool } from "./files.ts";
import { WorkerFd } from "./shared.ts";

/**
 * A Driver over a readiness Poller.
 *
 * @example
 * ```ts
 * const d = new ReadinessDriver(new EpollPoller());
 * const io = d.socket(fd);
 * d.turn(10);
 * io.close();
 * d.close();
 * ```
 */
export class ReadinessDriver extends Driver {
  readonly name: string;
  readonly registry: Registry;
  /** Numbers of closed files that a pool worker may still act on (see retire.ts). */
  readonly retirer = new Retirer();
  private pool: PoolClient | null = null;

  constructor(readonly poller: Poller) {
    super();
    this.name = poller.name;
    this.registry = new Registry(poller, this);
  }

  get watchFd(): number {
    return this.poller.fd;
  }

  get registrations(): number {
    return this.registry.size;
  }

  socket(fd: number, flags = 0): IoFd {
    return new ReadinessFd(this, fd, flags);
  }

  file(fd: number): FileFd {
    return new PoolFile(this, this.client(), this.retirer, fd);
  }

  openFile(path: string, flags: number, mode: number): FileFuture<number> {
    return openOnPool(this.client(), path, flags, mode);
  }

  statPath(path: string): FileFuture<StatFields> {
    return statOnPool(this.client(), path);
  }

  private pathOps: PoolPaths | null = null;

  /** Path ops: all on the blocking pool (files.ts). */
  get paths(): PathOps {
    return (this.pathOps ??= new PoolPaths(this.client()));
  }

  /** A shared fd, never made non-blocking: its reads and writes run on a Worker of its own (shared.ts). */
  inherited(fd: number): IoFd {
    return new WorkerFd(this, this.client(), fd);
  }

  private client(): PoolClient {
    return this.pool ?? (this.pool = new PoolClient(this.registry, this));
  }

  protected poll(timeoutMs: number): number {
    const n = this.poller.wait(timeoutMs);
    if (n > 0) this.registry.dispatch(this.poller.events, n);
    return n;
  }

  protected shutdown(): void {
    try {
      this.pool?.close();
    } finally {
      this.registry.closeAll();
      this.poller.close();
      this.retirer.close();
    }
  }
}
