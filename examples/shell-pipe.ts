/**
 * `ls | wc -l`, built from two Commands and reel's copy(): ls's stdout is a reel pipe,
 * copied into wc's stdin (another reel pipe) by this process; wc's answer comes back on a
 * third. Both children are waited for (and so reaped).
 *
 *   bun run examples/shell-pipe.ts [dir]       (default: the current directory)
 *   REEL_BACKEND=uring bun run examples/shell-pipe.ts /usr/bin
 */
import { BufReader, Command, blockOn, copy } from "../lib/index.ts";

const dir = process.argv[2] ?? ".";

const count = blockOn(function* () {
  const ls = new Command("ls").arg(dir).stdout("pipe").spawn();
  const wc = new Command("wc").arg("-l").stdin("pipe").stdout("pipe").spawn();
  const bytes = yield* copy(ls.stdout!, wc.stdin!); // ls | wc, through reel
  ls.stdout!.close();
  wc.stdin!.close(); // wc sees end of input
  wc.stdin = null;
  const line = yield* new BufReader(wc.stdout!).readLine();
  wc.stdout!.close();
  const [lsStatus, wcStatus] = [yield* ls.wait(), yield* wc.wait()];
  if (!lsStatus.success) throw new Error(`ls ${dir}: ${lsStatus}`);
  if (!wcStatus.success) throw new Error(`wc -l: ${wcStatus}`);
  console.error(`(${bytes} bytes went from ls to wc)`);
  return Number(line?.trim());
});
console.log(count);
