/**
 * Name lookup: `lookup(hostname, { family, signal })` → the addresses, resolved by
 * getaddrinfo on the current driver's resolver (lib/driver/resolver.ts, a Worker pool of
 * its own) — /etc/hosts, DNS, whatever the system's
 * resolver is configured to ask. IP literals are answered at once, without the pool, and
 * so are names under ".invalid" (ENOTFOUND: RFC 6761 reserves them as never existing).
 *
 * The future: its first poll submits (or joins) the job for its name and family; it waits
 * with its waker in the job; the poll after the job settled takes the result and leaves
 * the job. Cancelling it leaves the job too: the last lookup to leave an unfinished job
 * abandons or detaches it (resolver.ts), so a cancelled lookup leaks nothing. The
 * resolver hands back data (addresses, or an error code); the errors are made here.
 *
 * Must never: block, resolve on the runtime thread, or report an empty list (no address is
 * ENOTFOUND).
 */
import { SYS } from "../../ffi/constants.ts";
import { parseIPv4, parseIPv6 } from "../../ffi/sockaddr.ts";
import { BaseFuture, FutureStateError, PENDING, ready, type Context, type Poll, type Waker } from "../future.ts";
import { currentDriver } from "../current.ts";
import { withSignal } from "../cancel.ts";
import type { Job, LookupAddress, ResolverClient } from "../driver/resolver.ts";

/**
 * A name lookup failed. `.code` is "ENOTFOUND" (no such name, or none of that family),
 * "EAI_AGAIN" (a temporary failure: the DNS server did not answer), "EAI_FAIL", … or an
 * errno name for a system error ("ECANCELED": the runtime closed); `.hostname` the name;
 * `.syscall` "getaddrinfo".
 *
 * @example
 * ```ts
 * import { LookupError, lookup } from "reel";
 * try { yield* lookup("no-such-host.invalid"); }
 * catch (e) { if (e instanceof LookupError && e.code === "ENOTFOUND") console.log(`${e.hostname}: no such host`); }
 * ```
 */
export class LookupError extends Error {
  override name = "LookupError";
  readonly syscall = "getaddrinfo";
  constructor(
    readonly code: string,
    readonly hostname: string,
  ) {
    super(`getaddrinfo failed: ${code} (${hostname})`);
  }
}

/** AF_* for a lookup's family option (0: both). */
function familyCode(f: 0 | 4 | 6): number {
  return f === 4 ? SYS.AF_INET : f === 6 ? SYS.AF_INET6 : 0;
}

/**
 * Options for {@link lookup}.
 *
 * @example
 * ```ts
 * const ac = new AbortController();
 * const v4 = yield* lookup("localhost", { family: 4, signal: ac.signal });
 * ```
 */
export interface LookupOptions {
  /** 4 or 6 for one family (also "IPv4" / "IPv6"); 0 or absent for both. */
  family?: 0 | 4 | 6 | "IPv4" | "IPv6";
  /** Aborting it cancels the lookup, which then throws the signal's reason. */
  signal?: AbortSignal;
}

/** The longest host name lookup accepts (RFC 1035: 253 characters in text form). */
const MAX_NAME = 253;

/** Validates a hostname argument; returns it. */
export function checkHostname(hostname: unknown, what: string): string {
  if (typeof hostname !== "string") throw new TypeError(`Invalid hostname for ${what}: expected a string, got ${hostname === null ? "null" : typeof hostname}`);
  if (hostname.length === 0) throw new TypeError(`Invalid hostname for ${what}: the empty string`);
  if (hostname.includes("\0")) throw new TypeError(`Invalid hostname for ${what}: it contains a NUL character`);
  if (hostname.length > MAX_NAME) throw new RangeError(`Invalid hostname for ${what}: ${hostname.length} characters, the longest is ${MAX_NAME}`);
  return hostname;
}

function checkFamily(f: unknown): 0 | 4 | 6 {
  if (f === undefined || f === 0) return 0;
  if (f === 4 || f === "IPv4") return 4;
  if (f === 6 || f === "IPv6") return 6;
  throw new TypeError(`Invalid family ${String(f)} for lookup(): expected 4, 6, "IPv4", "IPv6" or 0`);
}

/**
 * RFC 6761 §6.4: "invalid" and names under it never exist; resolver APIs "SHOULD always
 * return immediate negative responses" — without asking the system's resolver.
 */
function isInvalidName(name: string): boolean {
  const n = name.toLowerCase().replace(/\.$/, "");
  return n === "invalid" || n.endsWith(".invalid");
}

/** The address of an IP literal (brackets and a %scope allowed for IPv6), or null. */
export function literalAddress(host: string): LookupAddress | null {
  if (parseIPv4(host) !== null) return { address: host, family: "IPv4" };
  const bare = host.startsWith("[") && host.endsWith("]") ? host.slice(1, -1) : host;
  return parseIPv6(bare) !== null ? { address: bare, family: "IPv6" } : null;
}

/**
 * Resolves `hostname` to its addresses, off the runtime thread (getaddrinfo on reel's
 * resolver pool): IPv4 and IPv6 in the system's preferred order, without duplicates.
 * Concurrent lookups of one name share one resolution; IP literals resolve at once.
 * Fails with LookupError (`.code` "ENOTFOUND", "EAI_AGAIN", …). Cancel-safe: a cancelled
 * lookup leaves nothing behind.
 *
 * @example
 * ```ts
 * import { blockOn, lookup } from "reel";
 * blockOn(function* () {
 *   for (const a of yield* lookup("localhost")) console.log(a.family, a.address);
 *   const v6 = yield* lookup("localhost", { family: 6 }); // or LookupError ENOTFOUND
 * });
 * ```
 */
export function lookup(hostname: string, opts: LookupOptions = {}): BaseFuture<LookupAddress[]> {
  const name = checkHostname(hostname, "lookup()");
  if (typeof opts !== "object" || opts === null) throw new TypeError("Invalid options for lookup(): expected an object");
  const family = checkFamily(opts.family);
  const signal = opts.signal;
  if (signal !== undefined && !(signal instanceof AbortSignal)) throw new TypeError("Invalid signal for lookup(): expected an AbortSignal");
  const lit = literalAddress(name);
  let fut: BaseFuture<LookupAddress[]>;
  if (lit !== null) {
    const ok = family === 0 || (family === 4) === (lit.family === "IPv4");
    fut = ok ? ready([lit]) : new Failed(new LookupError("ENOTFOUND", name));
  } else if (isInvalidName(name)) {
    fut = new Failed(new LookupError("ENOTFOUND", name));
  } else fut = new Lookup(name, family);
  return signal === undefined ? fut : withSignal(fut, signal);
}

/** A lookup that failed before it started (a literal of the other family). */
class Failed extends BaseFuture<LookupAddress[]> {
  constructor(private readonly err: LookupError) {
    super();
  }
  poll(_cx: Context): Poll<LookupAddress[]> {
    throw this.err;
  }
}

/** A lookup on the pool (see the module header). */
class Lookup extends BaseFuture<LookupAddress[]> {
  private client: ResolverClient | null = null;
  private job: Job | null = null;
  private waker: Waker | null = null;
  private done = false;

  constructor(
    private readonly name: string,
    private readonly family: 0 | 4 | 6,
  ) {
    super();
  }

  poll(cx: Context): Poll<LookupAddress[]> {
    if (this.done) throw new FutureStateError("lookup() future polled after completion");
    let job = this.job;
    if (job === null) {
      this.client = currentDriver().resolver;
      job = this.job = this.client.submit(this.name, familyCode(this.family));
    }
    if (!job.settled) {
      if (this.waker !== cx.waker) {
        if (this.waker !== null) job.wakers.delete(this.waker);
        job.wakers.add(cx.waker);
        this.waker = cx.waker;
      }
      return PENDING;
    }
    this.finish();
    const r = job.result!;
    if (typeof r === "string") throw new LookupError(r, this.name);
    return r.slice();
  }

  private finish(): void {
    this.done = true;
    const job = this.job;
    this.job = null;
    if (job !== null) this.client!.leave(job, this.waker);
    this.waker = null;
  }

  override cancel(): void {
    if (!this.done) this.finish();
  }
}

export type { LookupAddress };
