// A tiny replicated key-value store, tested in the simulator across many seeds.
//
//   bun run examples/sim-kv.ts                 # 1,000 seeds, random partitions, crashes and resets: the invariant holds
//   bun run examples/sim-kv.ts --bug           # the planted bug: some seed breaks the invariant; it is replayed from its seed
//   bun run examples/sim-kv.ts --seed 42 [--bug] [--verbose]   # one seed, with what each client did
//   bun run examples/sim-kv.ts --seeds 200     # fewer seeds
//
// Three hosts: a leader and two followers, all ordinary reel code over TcpListener and
// TcpStream, plus two clients. A client sends `PUT key value` to the leader; the leader
// stores it (on its disk: it survives crashes), replicates it to both followers and
// answers `OK version` once both have applied it — synchronous replication. A follower
// keeps its copy in memory only: after a crash it starts empty and refuses reads until the
// leader's snapshot has arrived on the new replication connection. A client sends `GET key`
// to any of the three.
//
// The invariant, checked by the clients: read-your-acknowledged-writes — once a PUT was
// answered `OK v`, a GET of that key from any replica that answers returns a version ≥ v.
// The nemesis (the simulation's chaos option) partitions links, crashes and restarts hosts
// and resets connections, at random times drawn from the seed.
//
// The planted bug (`--bug`): the leader answers `OK` once the *first* follower has applied
// the write, not both. Most seeds never notice; a seed where the other follower is cut off
// or slow while a client reads from it finds a stale read — and replaying that seed gives
// the same failure, event for event (the same trace hash).
import {
  BufReader,
  Notify,
  Sim,
  SimulationError,
  TcpListener,
  TcpStream,
  each,
  select,
  sleep,
  spawn,
  timeout,
  unboundedChannel,
  type SimHostContext,
  type SimResult,
} from "../lib/index.ts";

const args = process.argv.slice(2);
const flag = (name: string) => args.includes(name);
const value = (name: string) => (args.includes(name) ? args[args.indexOf(name) + 1] : undefined);
const BUG = flag("--bug");
const VERBOSE = flag("--verbose");
const SEEDS = Number(value("--seeds") ?? 1000);
const ONE = value("--seed");

const CLIENT_PORT = 7000;
const REPL_PORT = 7100;
const FOLLOWERS = ["f1", "f2"];
const REPLICAS = ["leader", ...FOLLOWERS];
const OPS = 25;
const enc = new TextEncoder();

interface Entry {
  value: string;
  version: number;
}

function* sendLine(s: TcpStream, line: string): Generator<unknown, void, unknown> {
  yield* s.writeAll(enc.encode(`${line}\n`));
}

/** The leader's connection to one follower: reconnects, sends a snapshot, then every write; tracks what was applied. */
class Replica {
  /** Highest version the follower acknowledged on the current connection (0 after a reconnect, until the snapshot's ack). */
  acked = 0;
  readonly changed = new Notify();
  private send: ((line: string) => void) | null = null;

  constructor(readonly name: string, readonly ip: string) {}

  /** Queues a write for the follower (dropped if not connected: the next snapshot carries it). */
  replicate(line: string): void {
    this.send?.(line);
  }

  *run(snapshot: () => string): Generator<unknown, void, unknown> {
    for (;;) {
      let s: TcpStream | null = null;
      try {
        s = yield* timeout(TcpStream.connect({ hostname: this.ip, port: REPL_PORT }), 500);
        const stream = s;
        const [tx, rx] = unboundedChannel<string>();
        this.acked = 0;
        tx.send(snapshot());
        this.send = (line) => tx.send(line);
        // One writer per connection: lines never interleave.
        const writer = spawn(function* () {
          for (const line of yield* each(rx)) {
            yield* sendLine(stream, line);
            yield* each.next();
          }
        });
        try {
          const r = new BufReader(s);
          for (let line; (line = yield* r.readLine()) !== null; ) {
            const [kind, v] = line.split(" ");
            if (kind === "ACK" && Number(v) > this.acked) {
              this.acked = Number(v);
              this.changed.notifyWaiters();
            }
          }
        } finally {
          this.send = null;
          tx.close();
          writer.abort();
        }
      } catch {
        // Refused, reset, timed out: the follower is down or cut off; try again.
      } finally {
        s?.close();
        this.acked = 0;
        this.changed.notifyWaiters();
      }
      yield* sleep(50);
    }
  }
}

function leader(sim: Sim) {
  return (ctx: SimHostContext) =>
    function* () {
      // The leader's disk: the store and the version counter survive its crashes.
      let store = ctx.disk.get("store") as Map<string, Entry> | undefined;
      if (store === undefined) ctx.disk.set("store", (store = new Map()));
      const db = store;
      const replicas = FOLLOWERS.map((f) => new Replica(f, sim.ip(f)));
      const snapshot = () => `SNAP ${ctx.disk.get("version") ?? 0} ${JSON.stringify([...db])}`;
      for (const r of replicas) spawn(() => r.run(snapshot), { name: `replicate to ${r.name}` });

      function* applied(version: number): Generator<unknown, boolean, unknown> {
        // Correct: every follower applied it. The planted bug: any one of them.
        const done = () => (BUG ? replicas.some((r) => r.acked >= version) : replicas.every((r) => r.acked >= version));
        try {
          yield* timeout(function* () {
            for (;;) {
              const waits = replicas.map((r) => r.changed.notified());
              if (done()) return;
              yield* select(...waits);
            }
          }, 300);
          return true;
        } catch {
          return false;
        }
      }

      const l = TcpListener.bind({ hostname: ctx.ip, port: CLIENT_PORT });
      for (;;) {
        const [s] = yield* l.accept();
        spawn(function* () {
          try {
            const r = new BufReader(s);
            for (let line; (line = yield* r.readLine()) !== null; ) {
              const [op, key, val] = line.split(" ") as [string, string, string | undefined];
              if (op === "GET") {
                const e = db.get(key);
                yield* sendLine(s, e === undefined ? "NONE" : `VAL ${e.value} ${e.version}`);
              } else if (op === "PUT" && val !== undefined) {
                const version = ((ctx.disk.get("version") as number | undefined) ?? 0) + 1;
                ctx.disk.set("version", version);
                db.set(key, { value: val, version });
                for (const rep of replicas) rep.replicate(`SET ${key} ${val} ${version}`);
                yield* sendLine(s, (yield* applied(version)) ? `OK ${version}` : "ERR not replicated");
              }
            }
          } catch {
            // the client went away
          } finally {
            s.close();
          }
        });
      }
    };
}

function follower() {
  return (ctx: SimHostContext) =>
    function* () {
      // In memory only: a crash loses it, and reads wait for the leader's snapshot.
      const state = { db: new Map<string, Entry>(), synced: false };
      const api = TcpListener.bind({ hostname: ctx.ip, port: CLIENT_PORT });
      spawn(function* () {
        for (;;) {
          const [s] = yield* api.accept();
          spawn(function* () {
            try {
              const r = new BufReader(s);
              for (let line; (line = yield* r.readLine()) !== null; ) {
                const [op, key] = line.split(" ") as [string, string];
                if (op !== "GET") continue;
                const e = state.db.get(key);
                yield* sendLine(s, !state.synced ? "ERR syncing" : e === undefined ? "NONE" : `VAL ${e.value} ${e.version}`);
              }
            } catch {
              // the client went away
            } finally {
              s.close();
            }
          });
        }
      });
      const repl = TcpListener.bind({ hostname: ctx.ip, port: REPL_PORT });
      for (;;) {
        const [s] = yield* repl.accept();
        spawn(function* () {
          try {
            const r = new BufReader(s);
            for (let line; (line = yield* r.readLine()) !== null; ) {
              if (line.startsWith("SNAP ")) {
                const sp = line.indexOf(" ", 5);
                const version = Number(line.slice(5, sp));
                for (const [k, e] of JSON.parse(line.slice(sp + 1)) as [string, Entry][]) {
                  const cur = state.db.get(k);
                  if (cur === undefined || cur.version < e.version) state.db.set(k, e);
                }
                state.synced = true;
                yield* sendLine(s, `ACK ${version}`);
              } else {
                const [, key, val, v] = line.split(" ") as [string, string, string, string];
                const version = Number(v);
                const cur = state.db.get(key);
                if (cur === undefined || cur.version < version) state.db.set(key, { value: val, version });
                yield* sendLine(s, `ACK ${version}`);
              }
            }
          } catch {
            // the leader went away or reset
          } finally {
            s.close();
          }
        });
      }
    };
}

/** One request on a fresh connection: the answer line, or null (refused, reset, timed out). */
function* request(ip: string, line: string): Generator<unknown, string | null, unknown> {
  let s: TcpStream | null = null;
  try {
    s = yield* timeout(TcpStream.connect({ hostname: ip, port: CLIENT_PORT }), 300);
    yield* sendLine(s, line);
    return yield* timeout(new BufReader(s).readLine(), 600);
  } catch {
    return null;
  } finally {
    s?.close();
  }
}

function client(sim: Sim, log: string[]) {
  return (ctx: SimHostContext) =>
    function* () {
      // What this client was told was written: key → the version acknowledged.
      const acked = new Map<string, number>();
      let reads = 0;
      for (let i = 0; i < OPS; i++) {
        const key = `k${sim.randomInt(3)}`;
        if (sim.random() < 0.5) {
          const val = `${ctx.name}.${i}`;
          const answer = yield* request(sim.ip("leader"), `PUT ${key} ${val}`);
          if (answer?.startsWith("OK ")) acked.set(key, Math.max(acked.get(key) ?? 0, Number(answer.slice(3))));
          if (VERBOSE) log.push(`${sim.now().toFixed(1)} ms ${ctx.name}: PUT ${key} ${val} → ${answer}`);
        } else {
          const from = REPLICAS[sim.randomInt(REPLICAS.length)]!;
          const answer = yield* request(sim.ip(from), `GET ${key}`);
          if (VERBOSE) log.push(`${sim.now().toFixed(1)} ms ${ctx.name}: GET ${key} from ${from} → ${answer}`);
          const want = acked.get(key) ?? 0;
          if (answer !== null && answer !== "ERR syncing") {
            reads++;
            const got = answer.startsWith("VAL ") ? Number(answer.split(" ")[2]) : 0;
            if (got < want) throw new Error(`stale read: ${from} answered ${key} at version ${got}, but version ${want} was acknowledged to ${ctx.name}`);
          }
        }
        yield* sleep(sim.randomInt(40));
      }
      return reads;
    };
}

/** One simulation of the store with `seed`. */
function runSeed(seed: number, log: string[] = []): SimResult {
  const sim = new Sim({ seed, link: { latency: [0.5, 2] } });
  sim.host("leader", leader(sim));
  for (const f of FOLLOWERS) sim.host(f, follower());
  sim.client("c1", client(sim, log));
  sim.client("c2", client(sim, log));
  return sim.run({
    limitMs: 600_000,
    chaos: { faults: ["partition", "crash", "reset", "hold"], interval: [100, 500], heal: [50, 300], hosts: REPLICAS },
  });
}

if (ONE !== undefined) {
  const log: string[] = [];
  try {
    const r = runSeed(Number(ONE), log);
    if (VERBOSE) console.log(log.join("\n"));
    console.log(`seed ${ONE}: invariant held (${r.faults} faults, ${(r.virtualMs / 1000).toFixed(1)} s of virtual time, trace ${r.traceHash})`);
  } catch (e) {
    if (VERBOSE) console.log(log.join("\n"));
    console.log(`seed ${ONE}: ${(e as Error).message}`);
    process.exitCode = 1;
  }
} else {
  const t0 = performance.now();
  let faults = 0;
  let virtualMs = 0;
  const failures: SimulationError[] = [];
  for (let seed = 1; seed <= SEEDS; seed++) {
    try {
      const r = runSeed(seed);
      faults += r.faults;
      virtualMs += r.virtualMs;
    } catch (e) {
      if (!(e instanceof SimulationError)) throw e;
      failures.push(e);
    }
  }
  const wall = ((performance.now() - t0) / 1000).toFixed(1);
  console.log(
    `${SEEDS} seeds in ${wall} s: ${faults} faults injected, ${(virtualMs / 60_000).toFixed(1)} min of virtual time; ` +
      `read-your-acknowledged-writes broken on ${failures.length} seed(s)${BUG ? " (the planted bug is on)" : ""}.`,
  );
  const found = failures[0];
  if (found === undefined) {
    if (BUG) {
      console.log("The planted bug was not found: try more --seeds.");
      process.exitCode = 1;
    }
  } else {
    const seed = found.seed;
    console.log(`The first, seed ${seed}: ${(found.cause as Error).message}`);
    console.log(`  at ${(found.virtualMs / 1000).toFixed(3)} s of virtual time, trace ${found.traceHash}`);
    if (failures.length > 1) console.log(`  also: seeds ${failures.slice(1, 11).map((f) => f.seed).join(", ")}${failures.length > 11 ? ", …" : ""}`);
    // Replay: the same seed gives the same run, event for event.
    let again: SimulationError | null = null;
    try {
      runSeed(seed);
    } catch (e) {
      again = e as SimulationError;
    }
    const same = again !== null && again.traceHash === found.traceHash && (again.cause as Error).message === (found.cause as Error).message;
    console.log(
      same
        ? `Replayed seed ${seed}: the same failure, the same trace (${again!.traceHash}). Alone, with what each client did: bun run examples/sim-kv.ts --seed ${seed}${BUG ? " --bug" : ""} --verbose`
        : `Replaying seed ${seed} did NOT reproduce it: ${String(again)}`,
    );
    if (!BUG || !same) process.exitCode = 1;
  }
}
