/**
 * Seed 003, step 3: the whole chain, traced step by step.
 *
 *     kernel → driver → waker.wake() → executor run queue → future.poll(cx)
 *
 * A read future is polled, finds no data (EAGAIN), stores the task's waker and returns
 * PENDING; the executor has nothing to run, so the driver sleeps in epoll_wait; a timer
 * task writes to the socket; the kernel reports readiness; the driver wakes the waker;
 * the executor polls the future again; it is ready.
 *
 *   bun run examples/reactor-waker.ts
 */
import { PENDING, Runtime, TcpListener, TcpStream, BaseFuture, sleep, spawn, type Context, type Future, type Poll } from "../lib/index.ts";

const t0 = performance.now();
const log = (s: string) => console.log(`${(performance.now() - t0).toFixed(3).padStart(8)} ms  ${s}`);

/** Wraps a future to log each poll, its result, and the wake-ups of its waker. */
class Traced<T> extends BaseFuture<T> {
  constructor(
    private readonly name: string,
    private readonly inner: Future<T>,
  ) {
    super();
  }
  poll(cx: Context): Poll<T> {
    log(`executor → ${this.name}.poll(cx)`);
    const name = this.name;
    // A logging waker in front of the task's own (an example may allocate per poll).
    const traced: Context = {
      waker: {
        wake() {
          log(`driver → waker.wake(): the task of ${name} goes on the run queue`);
          cx.waker.wake();
        },
      },
    };
    const r = this.inner.poll(traced);
    log(r === PENDING ? `${this.name} → PENDING (not readable yet: the waker is stored in the fd's registration)` : `${this.name} → ready: ${String(r)}`);
    return r;
  }
}

const rt = new Runtime();
// Trace the driver's turns (the reactor): how long it sleeps and what the kernel reports.
const driver = rt.driver;
const turn = driver.turn.bind(driver);
driver.turn = (maxWait: number) => {
  if (maxWait !== 0) log(`executor idle → driver.turn(): the ${driver.name} wait sleeps`);
  const n = turn(maxWait);
  if (n > 0) log(`kernel → driver: ${n} readiness event(s)`);
  return n;
};

rt.blockOn(function* () {
  const listener = TcpListener.bind({ port: 0 });
  const client = yield* TcpStream.connect({ port: listener.localAddr.port });
  const [server] = yield* listener.accept();
  log("connected; now a read with no data yet");

  spawn(function* () {
    yield* sleep(20);
    log("timer task: 20 ms passed, writing 5 bytes to the socket");
    yield* server.writeAll(new TextEncoder().encode("hello"));
  });

  const buf = new Uint8Array(16);
  const n = yield* new Traced("read", client.read(buf));
  log(`task resumes with "${new TextDecoder().decode(buf.subarray(0, n))}"`);
  client.close();
  server.close();
  listener.close();
});
rt.close();
