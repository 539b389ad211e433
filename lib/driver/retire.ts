/**
 * Retiring fd numbers: how a driver closes an fd that something it submitted may still
 * act on by number (an io_uring SQE not yet issued, a link waiting in a chain, a job a
 * pool worker has started). Such a number is *pinned*: dup3() makes it name a placeholder
 * (/dev/null, opened once per driver) — the file itself is released at once, so a peer
 * sees FIN or a port is free — while the number stays taken, so the next open() or
 * socket() cannot get it. When the driver knows nothing of the fd is outstanding, the
 * number is released (closed). A late op that resolves the number meets /dev/null: a read
 * gets EOF, a write vanishes, a recv fails ENOTSOCK — never another owner's file.
 *
 * Invariants: a pinned number names the placeholder until released; every pinned number
 * is released by the time the driver closes.
 *
 * Must never: release a number that was not pinned here, or close the placeholder while a
 * number is pinned to it.
 * Must never import: lib/executor.ts, lib/task/**, lib/net/**, lib/fs/**, lib/interop/**
 * Must never import: lib/driver/readiness/**, lib/driver/uring/**
 */
import * as libc from "../../ffi/libc.ts";
import { SysError, check } from "../errors.ts";

const O_RDWR = 2;
const O_CLOEXEC_LINUX = 0o2000000;
const DEV_NULL = new Uint8Array(new TextEncoder().encode("/dev/null\0"));

/**
 * A driver's pinned numbers and their placeholder.
 *
 * @example
 * ```ts
 * const r = new Retirer();
 * r.pin(fd);      // fd's file is closed; the number stays taken
 * r.release(fd);  // later: nothing can act on it any more
 * r.close();
 * ```
 */
export class Retirer {
  private placeholder: number;
  private readonly pinned = new Set<number>();

  constructor() {
    const cloexec = process.platform === "linux" ? O_CLOEXEC_LINUX : 0;
    this.placeholder = check(libc.openExisting(DEV_NULL, O_RDWR | cloexec), "open", "/dev/null (fd placeholder)");
  }

  /** Numbers pinned now (for tests and metrics). */
  get count(): number {
    return this.pinned.size;
  }

  /** Releases `fd`'s file now and keeps the number taken (see the module header). */
  pin(fd: number): void {
    const r = libc.dupCloexec(this.placeholder, fd);
    if (r < 0) throw new SysError(-r, "dup3", undefined, `pinning fd ${fd}`);
    this.pinned.add(fd);
  }

  /** True when `fd` is pinned here. */
  has(fd: number): boolean {
    return this.pinned.has(fd);
  }

  /** Releases a pinned number: nothing reel submitted can act on it any more. */
  release(fd: number): void {
    if (!this.pinned.delete(fd)) return;
    libc.close(fd);
  }

  /** Releases every pinned number and the placeholder. */
  close(): void {
    for (const fd of this.pinned) libc.close(fd);
    this.pinned.clear();
    if (this.placeholder >= 0) libc.close(this.placeholder);
    this.placeholder = -1;
  }
}
