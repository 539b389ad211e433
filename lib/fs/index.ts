/**
 * reel's file API (`reel/fs`): open/read/write (positional readAt/writeAt, writes in
 * issue order)/stat/fsync/setLen/close as futures, readFile, writeFile, chunked streaming
 * and linked writes, and the path operations — readDir, mkdir (recursive), remove,
 * removeDir, removeDirAll, rename, metadata, symlinkMetadata, copyFile, symlink,
 * readLink, canonicalize, truncate. io_uring ops on the uring backend where the kernel
 * has them; a small Worker pool doing the blocking calls otherwise (see file.ts, paths.ts
 * and pool.ts for the guarantees). Every error names its path.
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
export {
  DirEntry, readDir, mkdir, remove, removeDir, removeDirAll, rename, metadata, symlinkMetadata, symlink, readLink,
  canonicalize, truncate, copyFile, type MkdirOptions,
} from "./paths.ts";
export { readFile, writeFile, readChunks, ChunkReader } from "./whole.ts";
export { startFsPool } from "../driver/readiness/pool.ts";
