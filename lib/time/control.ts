/**
 * Time control, on every backend (tokio's `time::pause`): `pause()` freezes the running
 * runtime's clock, `advance(ms)` moves it forward (firing the timers due by then), and
 * `resume()` lets it follow real time again. While the clock is paused and every task is
 * idle, it *auto-advances* to the next timer instead of sleeping (the driver's frozen-clock
 * turn), so a test of a 30-second timeout finishes at once. I/O still runs for real on
 * the real backends: a paused clock can jump past a timeout while a reply is on its way,
 * exactly as under tokio. The simulator's clock is always frozen: pause() changes nothing
 * there, and resume() is refused.
 *
 * Must never: move a clock backwards, or act on a runtime other than the running one.
 */
import { BaseFuture, FutureStateError, PENDING, type Context, type Poll } from "../future.ts";
import { currentDriver } from "../current.ts";
import { RuntimeError, checkMs } from "../errors.ts";
import { sleep, type Sleep } from "./sleep.ts";

/**
 * Freezes the running runtime's clock: `now()` stands still, timers fire only when
 * {@link advance} moves it or, once every task is idle, when it jumps to the next timer.
 * Throws RuntimeError ENORUNTIME outside a runtime.
 *
 * @example
 * ```ts
 * import { blockOn, pause, sleep, now } from "reel";
 * blockOn(function* () {
 *   pause();
 *   const t0 = now();
 *   yield* sleep(60_000); // returns at once: the idle runtime jumps to the timer
 *   console.log(now() - t0); // 60000
 * });
 * ```
 */
export function pause(): void {
  currentDriver().clock.pause();
}

/**
 * Lets a paused clock follow real time again, from where it stands (never backwards).
 * RuntimeError ESIM under the simulator, whose clock is virtual.
 *
 * @example
 * ```ts
 * import { pause, resume } from "reel";
 * pause();
 * // … deterministic timer checks …
 * resume();
 * ```
 */
export function resume(): void {
  const clock = currentDriver().clock;
  if (clock.virtual) throw new RuntimeError("resume(): the simulator's clock is virtual and cannot follow real time", "ESIM");
  clock.resume();
}

/**
 * True when the running runtime's clock is frozen (paused, or the simulator's).
 *
 * @example
 * ```ts
 * import { isPaused } from "reel";
 * if (!isPaused()) console.log("real time");
 * ```
 */
export function isPaused(): boolean {
  return currentDriver().clock.frozen;
}

class Advance extends BaseFuture<void> {
  /** The turn after the move: a timer already due, so it fires with (first among) the ones the move made due. */
  private turn: Sleep | null = null;
  private done = false;
  constructor(private readonly ms: number) {
    super();
  }
  poll(cx: Context): Poll<void> {
    if (this.done) throw new FutureStateError("advance() future polled after completion");
    let t = this.turn;
    if (t === null) {
      const clock = currentDriver().clock;
      clock.advanceTo(clock.now() + this.ms);
      t = this.turn = sleep(0);
    }
    if (t.poll(cx) === PENDING) return PENDING;
    this.done = true;
    return undefined;
  }
  override cancel(): void {
    this.done = true;
    this.turn?.cancel();
  }
  override describe(): string {
    return `advance ${this.ms} ms`;
  }
}

/**
 * Moves the running runtime's clock `ms` forward and waits for the next driver turn, in
 * which every timer due by then fires (its task is woken) — so when the caller goes on,
 * those tasks are queued. Works paused or not (a running clock is moved ahead of real
 * time by `ms`).
 *
 * @example
 * ```ts
 * import { advance, pause, sleep, spawn } from "reel";
 * pause();
 * const h = spawn(sleep(1000));
 * yield* advance(1000); // the sleep's timer fired
 * yield* h;
 * ```
 */
export function advance(ms: number): BaseFuture<void> {
  checkMs(ms, "advance() duration");
  return new Advance(ms);
}
