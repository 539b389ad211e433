/**
 * merge(): one stream of the values of several, in the order they arrive, ending when all
 * of them have ended.
 *
 * Each poll tries every source that has not ended, starting one further along each time
 * (round robin), so a source that is always ready cannot starve the others. All sources
 * store the same waker; a wake from any of them re-polls the merge. Cost: O(sources) per
 * poll, fine for the handful merge is for.
 *
 * Cancel safety: as every source (`cancelNext()` is passed to each).
 *
 * Must never: poll a source after it ended, or return null before every source has.
 */
import type { Context, Poll } from "../future.ts";
import { PENDING } from "../future.ts";
import { StreamBase, checkStream, describeStream, type Stream } from "./stream.ts";

class Merge<T> extends StreamBase<T> {
  private readonly ended: boolean[];
  private live: number;
  private start = 0;
  constructor(private readonly srcs: Stream<T>[]) {
    super();
    this.ended = srcs.map(() => false);
    this.live = srcs.length;
  }

  pollNext(cx: Context): Poll<T | null> {
    const n = this.srcs.length;
    for (let k = 0; k < n && this.live > 0; k++) {
      const i = (this.start + k) % n;
      if (this.ended[i]) continue;
      const v = this.srcs[i]!.pollNext(cx);
      if (v === PENDING) continue;
      if (v === null) {
        this.ended[i] = true;
        this.live--;
        continue;
      }
      this.start = (i + 1) % n;
      return v;
    }
    return this.live === 0 ? null : PENDING;
  }

  override cancelNext(): void {
    for (let i = 0; i < this.srcs.length; i++) if (!this.ended[i]) this.srcs[i]!.cancelNext?.();
  }

  describe(): string {
    return `merge(${this.live} live): ${this.srcs.filter((_, i) => !this.ended[i]).map(describeStream).join(" | ")}`;
  }
}

/**
 * The values of every stream, as they arrive; ends when all have ended.
 *
 * @example
 * ```ts
 * import { each, interval, merge } from "reel";
 * for (const ev of yield* each(merge(commands, ticks.map(() => "tick")))) {
 *   handle(ev);
 *   yield* each.next();
 * }
 * ```
 */
export function merge<T>(...streams: Stream<T>[]): StreamBase<T> {
  streams.forEach((s, i) => checkStream(s, `merge() argument ${i}`));
  return new Merge(streams);
}
