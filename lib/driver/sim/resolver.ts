/**
 * Name lookups inside a simulation (`lookup()`, and `TcpStream.connect`/`UdpSocket.sendTo`
 * with a host name): answered from the simulation's own table, at once, with no resolver
 * thread — a simulated host's name (as `sim.host(name, …)` gave it, case-insensitive)
 * resolves to its IPv4 then its IPv6 address, "localhost" to 127.0.0.1 then ::1, and
 * anything else is ENOTFOUND. A crashed host's name still resolves (its DNS record did
 * not crash with it).
 *
 * Must never: start the resolver's Workers, open an fd, or answer from the real system.
 * Must never import: lib/executor.ts, lib/task/**
 */
import { SYS } from "../../../ffi/constants.ts";
import type { Waker } from "../../future.ts";
import { Job, ResolverClient, type LookupAddress } from "../resolver.ts";
import type { Driver } from "../driver.ts";
import type { SimNet } from "./net.ts";

/**
 * The simulation's resolver: the same interface as the real one (net/lookup.ts cannot tell).
 *
 * @example
 * ```ts
 * const job = simDriver.resolver.submit("server", 0); // settled at once
 * job.result; // [{ address: "10.0.0.2", family: "IPv4" }, { address: "fd00::2", family: "IPv6" }]
 * ```
 */
export class SimResolver extends ResolverClient {
  constructor(
    driver: Driver,
    private readonly net: SimNet,
  ) {
    super(driver);
  }

  /** A job settled at once with the simulated answer. */
  override submit(hostname: string, family: number): Job {
    const name = hostname.toLowerCase().replace(/\.$/, "");
    const job = new Job(`${family}:${name}`, hostname);
    job.waiters = 1;
    job.settled = true;
    const out: LookupAddress[] = [];
    let v4: string | null = null;
    let v6: string | null = null;
    if (name === "localhost") {
      v4 = "127.0.0.1";
      v6 = "::1";
    } else {
      const h = this.net.hostNamed(name);
      if (h !== null) {
        v4 = h.v4;
        v6 = h.v6;
      }
    }
    if (v4 !== null && family !== SYS.AF_INET6) out.push({ address: v4, family: "IPv4" });
    if (v6 !== null && family !== SYS.AF_INET) out.push({ address: v6, family: "IPv6" });
    job.result = out.length > 0 ? out : "ENOTFOUND";
    return job;
  }

  override leave(job: Job, _waker: Waker | null): void {
    job.waiters--;
  }

  override close(): void {
    // Nothing in flight: every job settles at submit.
  }
}
