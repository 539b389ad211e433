/**
 * Name lookup: the addresses of each name on the command line, resolved off the runtime
 * thread (getaddrinfo on reel's resolver pool), looked up concurrently.
 *
 *   bun run examples/lookup.ts localhost
 *   bun run examples/lookup.ts localhost no-such-host.invalid example.com
 *   bun run examples/lookup.ts --family 6 localhost
 *
 * Prints each address with its family, or the error code (ENOTFOUND, EAI_AGAIN …). Exits 1
 * when a name did not resolve.
 */
import { LookupError, blockOn, lookup, now, spawn } from "../lib/index.ts";

const args = process.argv.slice(2);
let family: 0 | 4 | 6 = 0;
if (args[0] === "--family") {
  const f = Number(args[1]);
  if (f !== 4 && f !== 6) {
    console.error("usage: bun run examples/lookup.ts [--family 4|6] NAME…");
    process.exit(2);
  }
  family = f;
  args.splice(0, 2);
}
if (args.length === 0) {
  console.error("usage: bun run examples/lookup.ts [--family 4|6] NAME…");
  process.exit(2);
}

blockOn(function* () {
  const t0 = now();
  const jobs = args.map((name) =>
    spawn(function* () {
      try {
        const addrs = yield* lookup(name, { family });
        return `${name}:\n${addrs.map((a) => `  ${a.family.padEnd(4)} ${a.address}`).join("\n")}`;
      } catch (e) {
        if (!(e instanceof LookupError)) throw e;
        process.exitCode = 1;
        return `${name}: ${e.code}`;
      }
    }),
  );
  for (const j of jobs) console.log(yield* j);
  console.log(`(${args.length} lookup${args.length > 1 ? "s" : ""} in ${(now() - t0).toFixed(1)} ms)`);
});
