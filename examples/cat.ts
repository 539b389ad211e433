/**
 * cat, in reel: copies standard input to standard output until end of input.
 *
 *   echo hi | bun run examples/cat.ts            # from a pipe
 *   bun run examples/cat.ts < README.md          # from a file
 *   bun run examples/cat.ts                      # from the terminal (Ctrl-D ends)
 *   REEL_BACKEND=uring bun run examples/cat.ts < README.md
 *
 * stdin and stdout are shared with the shell, so reel never makes them non-blocking:
 * on io_uring it reads and writes them with ring ops, on epoll/poll/kqueue with a Worker
 * of their own (see lib/io/stdio.ts). The terminal is left exactly as it was found.
 */
import { blockOn, copy, stdin, stdout } from "../lib/index.ts";

blockOn(function* () {
  const input = stdin();
  const output = stdout();
  try {
    yield* copy(input, output);
  } finally {
    input.close();
    output.close();
  }
});
