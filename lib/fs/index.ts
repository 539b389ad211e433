/**
 * reel's file API (`reel/fs`): open/read/write/stat/fsync/close as futures, readFile,
 * writeFile, chunked streaming and linked writes. io_uring ops on the uring backend; a
 * small Worker pool doing the blocking calls on the readiness backends (see file.ts and
 * pool.ts for the guarantees).
 *
 * @example
 * ```ts
 * import { blockOn } from "reel";
 * import * as fs from "reel/fs";
 * blockOn(function* () {
 *   yield* fs.writeFile("/tmp/hello.txt", new TextEncoder().encode("hi"));
 *   const bytes = yield* fs.readFile("/tmp/hello.txt");
 * });
 * ```
 */
export { File, Stats, open, read, write, stat, fsync, close, type OpenFlags } from "./file.ts";
export { readFile, writeFile, readChunks, ChunkReader } from "./whole.ts";
export { startFsPool } from "../driver/readiness/pool.ts";
