/**
 * reel's synchronisation primitives for tasks on one thread: channels (mpsc, oneshot,
 * broadcast, watch), Notify, Mutex, RwLock, Semaphore, Barrier.
 *
 * Single-threaded means no atomics, but the waker discipline is tokio's: a future that
 * returns PENDING is parked in an intrusive wait list with its waker; whoever makes
 * progress possible unlinks it and wakes it; a cancelled future unlinks itself in O(1)
 * and passes on anything it had already been handed (a permit, a notification).
 *
 * Cancel safety at a glance (details in each module):
 *
 * | operation                          | cancel-safe? |
 * |------------------------------------|--------------|
 * | mpsc `recv()`                       | yes — nothing is taken until it completes |
 * | mpsc `send()` (bounded)             | yes, the value is not sent; the queue place is lost |
 * | oneshot `recv()`                    | yes |
 * | broadcast `recv()`                  | yes |
 * | watch `changed()`                   | yes |
 * | Notify `notified()`                 | yes — a notifyOne() it received is passed on |
 * | Mutex `lock()`, RwLock `read()`/`write()` | yes — a lock handed to it is passed on; queue place lost |
 * | Semaphore `acquire(n)`              | yes — granted permits are returned; queue place lost |
 * | Barrier `wait()`                    | yes before the barrier trips (the arrival is taken back) |
 *
 * The receivers (mpsc, broadcast, watch) are Streams (lib/stream/stream.ts): `each(rx)`,
 * `rx.next()`, `for await` in hosted mode, map/filter/take/timeout — cancel-safe as recv().
 * Every waiting future describes itself (`describe()`) for `runtime.dump()`.
 *
 * Must never: import the executor (primitives only talk to wakers).
 */
export { Waiter, WaitList } from "./waitlist.ts";
export { SendError, RecvError, LaggedError, AcquireError } from "./errors.ts";
export { Semaphore, SemaphorePermit, MAX_PERMITS, type Acquire } from "./semaphore.ts";
export { Mutex, MutexGuard } from "./mutex.ts";
export { RwLock, RwLockReadGuard, RwLockWriteGuard, MAX_READERS } from "./rwlock.ts";
export { Notify, type Notified } from "./notify.ts";
export { Barrier, BarrierWaitResult, type BarrierWait } from "./barrier.ts";
export { channel, unboundedChannel, Sender, UnboundedSender, Receiver, type Send, type Recv } from "./mpsc.ts";
export { oneshot, OneshotSender, OneshotReceiver, type OneshotRecv } from "./oneshot.ts";
export { broadcast, BroadcastSender, BroadcastReceiver, type BroadcastRecv } from "./broadcast.ts";
export { watch, WatchSender, WatchReceiver, type Changed } from "./watch.ts";
