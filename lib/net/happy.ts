/**
 * Happy Eyeballs (RFC 8305): connecting to a host name by racing its addresses. The name
 * is looked up (dns/lookup.ts); the addresses are interleaved by family, IPv6 first
 * (§4); the first attempt starts at once and each next one when the previous failed or
 * after the Connection Attempt Delay (250 ms, §5) — whichever comes first — while the
 * earlier attempts keep running. The first handshake to complete wins; every other
 * attempt's socket is closed at once. When all fail, the error is the first attempt's
 * code with every address and its error in the message.
 *
 * The future holds: the lookup (until it answers), the addresses not yet tried, the
 * attempts in flight (each an IoSource in its connect handshake) and the delay timer. All
 * share the task's waker. Cancelling it cancels the lookup and the timer and closes every
 * attempt's socket: nothing is left behind.
 *
 * Must never: leave a losing socket open, start two attempts in one step without a
 * failure or the delay between them, or report success for a socket whose handshake did
 * not complete.
 */
import { SYS } from "../../ffi/constants.ts";
import { BaseFuture, FutureStateError, PENDING, type Context, type Poll } from "../future.ts";
import { SysError } from "../errors.ts";
import { IoSource } from "../io/source.ts";
import { sleep, type Sleep } from "../time/sleep.ts";
import { resolve, type Resolved } from "./addr.ts";
import { lookup, type LookupAddress } from "./lookup.ts";
import { newSocket } from "./socket.ts";

/** RFC 8305's recommended Connection Attempt Delay. */
export const CONNECTION_ATTEMPT_DELAY_MS = 250;

/**
 * Orders addresses for Happy Eyeballs (RFC 8305 §4): alternate families, starting with
 * IPv6, each family in the resolver's order.
 *
 * @example
 * ```ts
 * interleave([{ address: "127.0.0.1", family: "IPv4" }, { address: "::1", family: "IPv6" }]);
 * // → [::1, 127.0.0.1]
 * ```
 */
export function interleave(addrs: readonly LookupAddress[]): LookupAddress[] {
  const v6 = addrs.filter((a) => a.family === "IPv6");
  const v4 = addrs.filter((a) => a.family === "IPv4");
  const out: LookupAddress[] = [];
  for (let i = 0; i < v6.length || i < v4.length; i++) {
    if (i < v6.length) out.push(v6[i]!);
    if (i < v4.length) out.push(v4[i]!);
  }
  return out;
}

/** One connection attempt in flight. */
interface Attempt {
  readonly src: IoSource;
  readonly addr: Resolved;
  readonly label: string;
}

/**
 * Connects to `hostname:port` by racing its addresses (see the module header); resolves
 * to the connected socket's source. `addrs` skips the lookup (tests, callers that looked
 * up already).
 *
 * @example
 * ```ts
 * const src = yield* new HappyConnect("localhost", 8080);
 * const stream = new TcpStream(src);
 * ```
 */
export class HappyConnect extends BaseFuture<IoSource> {
  private lookup: BaseFuture<LookupAddress[]> | null = null;
  private queue: LookupAddress[] | null = null;
  private readonly attempts: Attempt[] = [];
  private timer: Sleep | null = null;
  private readonly failures: string[] = [];
  private firstError: SysError | null = null;
  private done = false;

  constructor(
    private readonly hostname: string,
    private readonly port: number,
    addrs: readonly LookupAddress[] | null = null,
    private readonly delayMs = CONNECTION_ATTEMPT_DELAY_MS,
  ) {
    super();
    if (addrs !== null) this.queue = interleave(addrs);
  }

  poll(cx: Context): Poll<IoSource> {
    if (this.done) throw new FutureStateError("connect() future polled after completion");
    try {
      if (this.queue === null) {
        const lk = this.lookup ?? (this.lookup = lookup(this.hostname));
        const addrs = lk.poll(cx);
        if (addrs === PENDING) return PENDING;
        this.lookup = null;
        this.queue = interleave(addrs);
        this.startNext();
      } else if (this.attempts.length === 0 && this.failures.length === 0) {
        this.startNext();
      }
      return this.step(cx);
    } catch (e) {
      this.abandon();
      throw e;
    }
  }

  /** Polls every attempt, then the delay timer; returns the winner or PENDING. */
  private step(cx: Context): Poll<IoSource> {
    for (let guard = 0; guard < 1000; guard++) {
      let failed = false;
      for (let i = 0; i < this.attempts.length; i++) {
        const a = this.attempts[i]!;
        let r: Poll<void>;
        try {
          r = a.src.pollConnect(cx, a.addr.sockaddr, a.addr.length, a.label);
        } catch (e) {
          this.record(a.label, e);
          a.src.close();
          this.attempts.splice(i--, 1);
          failed = true;
          continue;
        }
        if (r !== PENDING) return this.win(a);
      }
      // A failure starts the next attempt at once (§5), restarting the delay.
      if (failed && this.startNext()) continue;
      if (this.attempts.length === 0 && this.queue!.length === 0) throw this.allFailed();
      if (this.attempts.length === 0) {
        this.startNext();
        continue;
      }
      if (this.queue!.length > 0) {
        const t = this.timer ?? (this.timer = sleep(this.delayMs));
        if (t.poll(cx) !== PENDING) {
          this.timer = null;
          this.startNext();
          continue;
        }
      }
      return PENDING;
    }
    throw new Error("Happy Eyeballs: no progress after 1000 steps (a bug)");
  }

  /** Starts the next address's attempt (skipping ones whose socket cannot be made); false when none is left. */
  private startNext(): boolean {
    this.timer?.cancel();
    this.timer = null;
    const q = this.queue!;
    while (q.length > 0) {
      const a = q.shift()!;
      const label = a.family === "IPv6" ? `[${a.address}]:${this.port}` : `${a.address}:${this.port}`;
      try {
        const addr = resolve({ hostname: a.address, port: this.port }, "connect()");
        const fd = newSocket(addr.domain, SYS.SOCK_STREAM);
        this.attempts.push({ src: new IoSource(fd), addr, label });
        return true;
      } catch (e) {
        this.record(label, e); // no IPv6 here (EAFNOSUPPORT), out of fds: try the next
      }
    }
    return false;
  }

  private record(label: string, e: unknown): void {
    if (!(e instanceof SysError)) throw e;
    this.failures.push(`${label} ${e.code}`);
    this.firstError ??= e;
  }

  private allFailed(): SysError {
    const e = this.firstError;
    const detail = `${this.hostname}:${this.port}: ${this.failures.join(", ") || "no address"}`;
    return new SysError(e?.errno ?? 0, e?.syscall ?? "connect", e?.code ?? "ENOTFOUND", detail);
  }

  private win(a: Attempt): IoSource {
    this.done = true;
    const i = this.attempts.indexOf(a);
    this.attempts.splice(i, 1);
    this.abandon();
    return a.src;
  }

  /** Cancels the lookup and the timer, closes every attempt still in flight. */
  private abandon(): void {
    this.done = true;
    this.lookup?.cancel();
    this.lookup = null;
    this.timer?.cancel();
    this.timer = null;
    for (const a of this.attempts.splice(0)) a.src.close();
  }

  override cancel(): void {
    if (!this.done) this.abandon();
  }
}
