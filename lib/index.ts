/**
 * reel: a syscall-level async I/O runtime for Bun.
 *
 *     kernel (epoll / kqueue / io_uring) → driver → waker.wake() → executor run queue → future.poll(cx)
 *
 * This is the public surface. Everything a user imports comes from here; the folders
 * below are internal and may change.
 *
 * @example
 * ```ts
 * import { TcpListener, blockOn, spawn } from "reel";
 * blockOn(function* () {
 *   const listener = TcpListener.bind({ hostname: "127.0.0.1", port: 7000 });
 *   for (;;) {
 *     const [stream] = yield* listener.accept();
 *     spawn(function* () {
 *       const buf = new Uint8Array(65536);
 *       for (let n; (n = yield* stream.read(buf)) > 0; ) yield* stream.writeAll(buf.subarray(0, n));
 *       stream.close();
 *     });
 *   }
 * });
 * ```
 *
 * Must never: run anything at import (no runtime, Worker or fd is made until used); it
 * only re-exports.
 *
 * @module
 */
export {
  PENDING,
  BaseFuture,
  FutureStateError,
  ready,
  pollFn,
  map,
  andThen,
  gen,
  isFuture,
  intoFuture,
  Cleanup,
  cancelOf,
  handOut,
  describeFuture,
  type Future,
  type Poll,
  type Context,
  type Waker,
  type IntoFuture,
} from "./future.ts";
export {
  Runtime,
  blockOn,
  spawn,
  spawnDetached,
  yieldNow,
  currentRuntime,
  POLLS_PER_TICK,
  DEFAULT_CLEANUP_LIMIT_MS,
  DEFAULT_SLOW_POLL_MS,
  type RuntimeOptions,
  type SpawnOptions,
  type SlowPoll,
} from "./executor.ts";
export type { ReportKind } from "./current.ts";
export { JoinHandle, JoinError } from "./task/task.ts";
export { scope, Scope } from "./task/scope.ts";
export type { RuntimeMetrics, DriverMetrics } from "./inspect/metrics.ts";
export type { RuntimeDump, TaskSnapshot } from "./inspect/dump.ts";
export { StreamBase, NextFuture, asStream, isStream, type Stream } from "./stream/stream.ts";
export { each } from "./stream/each.ts";
export { merge } from "./stream/merge.ts";
export { SysError, TimeoutError, RuntimeError, UnexpectedEofError } from "./errors.ts";
export { sleep, sleepUntil, interval, timeout, Interval, Sleep } from "./time/sleep.ts";
export { now } from "./time/clock.ts";
export { TcpListener, TcpStream, type BindOptions, type ConnectOptions } from "./net/tcp.ts";
export type { ShutdownHow, SocketBase, StreamSocket } from "./net/stream_socket.ts";
export { serve, type ServeOptions, type ConnectionHandler, type ServeErrorSource } from "./net/serve.ts";
export { listen, TcpServer, TcpConn, type ListenOptions, type UnixListenOptions, type ServerOptions, type SocketHandler } from "./net/listen.ts";
export { SocketAddr } from "../ffi/sockaddr.ts";
export type { HostPort } from "./net/addr.ts";
export type { Backend } from "./driver/index.ts";
export {
  Semaphore,
  SemaphorePermit,
  MAX_PERMITS,
  Mutex,
  MutexGuard,
  RwLock,
  RwLockReadGuard,
  RwLockWriteGuard,
  MAX_READERS,
  Notify,
  Barrier,
  BarrierWaitResult,
  channel,
  unboundedChannel,
  Sender,
  UnboundedSender,
  Receiver,
  oneshot,
  OneshotSender,
  OneshotReceiver,
  broadcast,
  BroadcastSender,
  BroadcastReceiver,
  watch,
  WatchSender,
  WatchReceiver,
  SendError,
  RecvError,
  LaggedError,
  AcquireError,
  Waiter,
  WaitList,
  type Acquire,
  type Notified,
  type BarrierWait,
  type Send,
  type Recv,
  type OneshotRecv,
  type BroadcastRecv,
  type Changed,
} from "./sync/index.ts";
export {
  join,
  joinAll,
  tryJoin,
  tryJoinAll,
  select,
  race,
  JoinSet,
  AbortHandle,
  type Output,
  type JoinOutputs,
  type Selected,
  type JoinNext,
  type Shutdown,
} from "./combinators/index.ts";
export { CancellationToken, CancelledError, DropGuard, withSignal, withToken, type SignalOption, type WaitCancelled } from "./cancel.ts";
export { run, isHosted, TICKS_PER_SLICE, type RunOptions } from "./interop/hosted.ts";
export { fromPromise, toPromise } from "./interop/promise.ts";
export { toReadableStream, toWritableStream, frames, streamIterator, type WebStreamOptions, type FrameSource } from "./interop/web.ts";
export {
  read,
  write,
  writeAll,
  readExact,
  flush,
  shutdown,
  isAsyncRead,
  isAsyncWrite,
  WriteZeroError,
  FrameTooLargeError,
  type AsyncRead,
  type AsyncWrite,
} from "./io/stream.ts";
export { ByteBuffer } from "./io/bytes.ts";
export { BufReader, BufWriter, DEFAULT_BUF_SIZE, DEFAULT_MAX_LINE, type BufReaderOptions, type BufWriterOptions } from "./io/buf.ts";
export { copy, copyBidirectional, COPY_BUF_SIZE } from "./io/copy.ts";
export { split, reunite, ReadHalf, WriteHalf } from "./io/split.ts";
export { LinesCodec, LengthDelimitedCodec, type Decoder, type Encoder, type LengthDelimitedOptions } from "./io/codec.ts";
export { Framed, FramedRead, FramedWrite, type FramedOptions } from "./io/framed.ts";
export * as fs from "./fs/index.ts";
export { signal, ctrlC, SignalStream, type SignalName } from "./signal/signal.ts";
export { Command, type CommandOutput } from "./process/command.ts";
export { Child, ChildOutput, ExitStatus } from "./process/child.ts";
export type { Stdio } from "./process/spawn.ts";
export { pipe, PipeReader, PipeWriter } from "./io/pipe.ts";
export { stdin, stdout, stderr, Stdin, StdWriter } from "./io/stdio.ts";
export { spawnBlocking, blockingCancelled, setBlockingPoolSize, blockingPoolSize, startBlockingPool } from "./blocking/blocking.ts";
export { UdpSocket, type UdpBindOptions, type UdpTarget } from "./net/udp.ts";
export { UnixListener, UnixStream, type PeerCred } from "./net/unix.ts";
export { UnixDatagram } from "./net/unix_dgram.ts";
export { TruncatedError, type Datagram, type OutDatagram } from "./net/dgram.ts";
export { lookup, LookupError, type LookupAddress, type LookupOptions } from "./net/lookup.ts";
export { AsyncFd, AsyncFdReadyGuard } from "./io/asyncfd.ts";
export { Sim, SimulationError, type SimHostContext, type SimResult, type SimRunOptions, type ChaosOptions } from "./sim/sim.ts";
export type { SimOptions, LinkOptions } from "./driver/sim/config.ts";
export { pause, resume, advance, isPaused } from "./time/control.ts";
