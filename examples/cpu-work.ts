/**
 * CPU work for examples/head-of-line.ts, in a module of its own so that spawnBlocking's
 * Workers can load it (a Worker loads a module by URL; this one has no top-level effects).
 */

/** Burns `ms` of CPU (a checksum over a growing counter) and returns the checksum. */
export function burn(ms: number): number {
  const end = performance.now() + ms;
  let x = 0;
  while (performance.now() < end) for (let i = 0; i < 10_000; i++) x = (x * 31 + i) | 0;
  return x;
}
