/**
 * Address resolution for TCP: `{ hostname, port }` → an encoded sockaddr.
 *
 * Accepts IPv4 literals, IPv6 literals (with or without brackets, with a numeric
 * %scope), and "localhost" (127.0.0.1). Other names need DNS, which reel does not do yet:
 * they fail with a TypeError that says so, never with a silent fallback.
 *
 * Must never: block on name resolution.
 */
import { SYS } from "../../ffi/constants.ts";
import { SOCKADDR_MAX, encodeIPv4, encodeIPv6, parseIPv4, parseIPv6 } from "../../ffi/sockaddr.ts";
import { checkPort } from "../errors.ts";

/** An address encoded for bind/connect. */
export interface Resolved {
  readonly domain: number;
  readonly sockaddr: Uint8Array;
  readonly length: number;
}

/** Where to bind or connect. */
export interface HostPort {
  /** An IP literal or "localhost"; default "127.0.0.1". */
  hostname?: string;
  port: number;
}

/**
 * Resolves `{ hostname, port }`; throws TypeError/RangeError naming a bad value.
 *
 * @example
 * ```ts
 * resolve({ hostname: "::1", port: 8080 }).domain === SYS.AF_INET6; // true
 * ```
 */
export function resolve(opts: HostPort, what = "address"): Resolved {
  if (typeof opts !== "object" || opts === null) throw new TypeError(`Invalid ${what}: expected { hostname, port }, got ${String(opts)}`);
  const port = checkPort(opts.port, `port for ${what}`);
  const host = opts.hostname ?? "127.0.0.1";
  if (typeof host !== "string") throw new TypeError(`Invalid hostname ${String(host)}: must be a string`);
  // Allocated per call: bind/connect are not hot paths, and the buffer is only read by the syscall.
  const sockaddr = new Uint8Array(new ArrayBuffer(SOCKADDR_MAX));
  const name = host === "localhost" ? "127.0.0.1" : host;
  const v4 = parseIPv4(name);
  if (v4 !== null) return { domain: SYS.AF_INET, sockaddr, length: encodeIPv4(sockaddr, v4, port) };
  const bare = name.startsWith("[") && name.endsWith("]") ? name.slice(1, -1) : name;
  const v6 = parseIPv6(bare);
  if (v6 !== null) return { domain: SYS.AF_INET6, sockaddr, length: encodeIPv6(sockaddr, v6.bytes, port, v6.scopeId) };
  throw new TypeError(
    `Cannot resolve hostname "${host}": reel accepts IP literals and "localhost" (DNS lookup is not implemented yet)`,
  );
}
