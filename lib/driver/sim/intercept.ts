/**
 * Keeping real time and real randomness out of a simulation. While a simulation runtime
 * runs on the thread (between its driver's enter and leave), the globals that would make
 * a run unrepeatable are replaced: `Math.random`, `crypto.getRandomValues`,
 * `crypto.randomUUID` draw from the simulation's seeded generator; `Date.now`, `new Date()`
 * and `performance.now` read the virtual clock (Date at `epochMs` + virtual time). Every
 * such call is counted and traced. In "throw" mode (`REEL_SIM_STRICT=1`) each one fails
 * with RuntimeError ESIM naming the call instead, to find them; "off" leaves the globals
 * alone. The originals are put back when the runtime leaves the thread — also when it
 * leaves by an exception — so nothing outside the simulation ever sees the replacements.
 *
 * What cannot be caught here: timers of Bun's own loop (they cannot fire inside blockOn
 * anyway), `process.hrtime.bigint` (left real: answering it would make a BigInt per call),
 * native code reading the clock, and values read before the simulation started.
 *
 * Must never: leave a replacement installed after leave(), or read real time itself.
 * Must never import: lib/executor.ts, lib/task/**, bun:ffi
 */
import { RuntimeError } from "../../errors.ts";
import type { Clock } from "../../time/clock.ts";
import type { SimRng } from "./rng.ts";
import { EV_INTERCEPT, INTERCEPTED_NAMES, type SimTrace } from "./trace.ts";

const I_RANDOM = 1;
const I_DATE_NOW = 2;
const I_PERF_NOW = 3;
const I_NEW_DATE = 4;
const I_GET_RANDOM = 5;
const I_UUID = 6;
const I_NANOS = 7;
const I_HRTIME = 8;

type Saved = { obj: object; key: string; desc: PropertyDescriptor | undefined };

/**
 * The replacements of one simulation, installed while it runs.
 *
 * @example
 * ```ts
 * const ic = new Interceptor("virtualize", rng.fork("user"), clock, 946684800000, trace, 42);
 * ic.install();   // Math.random() now draws from the seed
 * ic.uninstall(); // back to the real one
 * ```
 */
export class Interceptor {
  /** Calls intercepted, by kind (see {@link Interceptor.report}). */
  readonly counts = [0, 0, 0, 0, 0, 0, 0, 0, 0];
  private saved: Saved[] | null = null;

  constructor(
    readonly mode: "virtualize" | "throw" | "off",
    private readonly rng: SimRng,
    private readonly clock: Clock,
    private readonly epochMs: number,
    private readonly trace: SimTrace,
    private readonly seed: number,
  ) {}

  /** What was intercepted: "Math.random ×3, Date.now ×1", or "" when nothing was. */
  report(): string {
    const parts: string[] = [];
    for (let i = 1; i < this.counts.length; i++) if (this.counts[i]! > 0) parts.push(`${INTERCEPTED_NAMES[i]} ×${this.counts[i]}`);
    return parts.join(", ");
  }

  /** Total intercepted calls. */
  get total(): number {
    let n = 0;
    for (const c of this.counts) n += c;
    return n;
  }

  private hit(kind: number): void {
    this.counts[kind]!++;
    this.trace.ev(this.clock.now(), EV_INTERCEPT, kind, 0, 0);
    if (this.mode === "throw") {
      throw new RuntimeError(
        `${INTERCEPTED_NAMES[kind]}() was called inside the simulation (seed ${this.seed}): it would make the run unrepeatable. ` +
          "Use the simulation's seeded randomness and now(), or run with intercept: \"virtualize\"",
        "ESIM",
      );
    }
  }

  private set(obj: object, key: string, value: unknown): void {
    const desc = Object.getOwnPropertyDescriptor(obj, key);
    this.saved!.push({ obj, key, desc });
    // A non-configurable but writable property (Bun.nanoseconds) is assigned, not redefined.
    if (desc !== undefined && desc.configurable === false) (obj as Record<string, unknown>)[key] = value;
    else Object.defineProperty(obj, key, { value, writable: true, configurable: true, enumerable: false });
  }

  /** Installs the replacements (idempotent). */
  install(): void {
    if (this.mode === "off" || this.saved !== null) return;
    this.saved = [];
    const self = this;
    const rng = this.rng;
    const clock = this.clock;
    const epoch = this.epochMs;
    this.set(Math, "random", function random(): number {
      self.hit(I_RANDOM);
      return rng.float();
    });
    const RealDate = globalThis.Date;
    const dateNow = function now(): number {
      self.hit(I_DATE_NOW);
      return epoch + Math.floor(clock.now());
    };
    // new Date() with no argument is "now": the virtual now. Anything else is the real Date's.
    const SimDate = function Date(this: unknown, ...args: unknown[]): unknown {
      if (!new.target) return new RealDate(epoch + Math.floor(clock.now())).toString();
      if (args.length === 0) {
        self.hit(I_NEW_DATE);
        return Reflect.construct(RealDate, [epoch + Math.floor(clock.now())], new.target);
      }
      return Reflect.construct(RealDate, args, new.target);
    } as unknown as DateConstructor;
    Object.setPrototypeOf(SimDate, RealDate);
    Object.defineProperty(SimDate, "prototype", { value: RealDate.prototype, writable: false });
    Object.defineProperty(SimDate, "now", { value: dateNow, writable: true, configurable: true });
    this.set(globalThis, "Date", SimDate);
    this.set(RealDate, "now", dateNow);
    this.set(performance, "now", function now(): number {
      self.hit(I_PERF_NOW);
      return clock.now();
    });
    if (typeof Bun !== "undefined") {
      this.set(Bun, "nanoseconds", function nanoseconds(): number {
        self.hit(I_NANOS);
        return Math.round(clock.now() * 1e6);
      });
    }
    const realHrtime = process.hrtime;
    const hrtime = function hrtime(prev?: [number, number]): [number, number] {
      self.hit(I_HRTIME);
      const ns = Math.round(clock.now() * 1e6);
      let sec = Math.floor(ns / 1e9);
      let nsec = ns - sec * 1e9;
      if (prev !== undefined) {
        sec -= prev[0];
        nsec -= prev[1];
        if (nsec < 0) {
          sec--;
          nsec += 1e9;
        }
      }
      return [sec, nsec];
    };
    (hrtime as unknown as { bigint: unknown }).bigint = realHrtime.bigint;
    this.set(process, "hrtime", hrtime);
    const c = globalThis.crypto;
    if (c !== undefined) {
      this.set(c, "getRandomValues", function getRandomValues<T extends ArrayBufferView | null>(arr: T): T {
        self.hit(I_GET_RANDOM);
        if (arr !== null) {
          const b = new Uint8Array(arr.buffer, arr.byteOffset, arr.byteLength);
          for (let i = 0; i < b.length; i++) b[i] = rng.u32() & 0xff;
        }
        return arr;
      });
      this.set(c, "randomUUID", function randomUUID(): string {
        self.hit(I_UUID);
        const b = new Uint8Array(16);
        for (let i = 0; i < 16; i++) b[i] = rng.u32() & 0xff;
        b[6] = (b[6]! & 0x0f) | 0x40;
        b[8] = (b[8]! & 0x3f) | 0x80;
        const h = [...b].map((x) => x.toString(16).padStart(2, "0")).join("");
        return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
      });
    }
  }

  /** Puts the originals back (idempotent). */
  uninstall(): void {
    const saved = this.saved;
    if (saved === null) return;
    this.saved = null;
    for (let i = saved.length - 1; i >= 0; i--) {
      const { obj, key, desc } = saved[i]!;
      if (desc === undefined) delete (obj as Record<string, unknown>)[key];
      else if (desc.configurable === false) (obj as Record<string, unknown>)[key] = desc.value;
      else Object.defineProperty(obj, key, desc);
    }
  }
}
