/**
 * TCP on the simulated wire: what happens to a segment once a socket has sent it (tcp.ts
 * sends them). A flow's first segment is delivered when due — or lost, when its link is
 * cut, its destination crashed or nobody has the address: TCP then retransmits it (SYNs
 * after 1, 2, 4 … s; data every 200 ms doubling up to 2 min) and gives up one timeout
 * after its last retry (ETIMEDOUT). On arrival: a SYN finds a listener (a full accept
 * queue drops it; none answers with a reset: ECONNREFUSED), a SYN-ACK completes a connect,
 * data and FIN fill the receiver, a reset fails the connection once (ECONNRESET, or EPIPE
 * after the peer's FIN). A socket closed, reset or of a crashed-and-restarted host answers
 * what still arrives with a reset. Held links keep their flows until released.
 *
 * Must never: let a segment overtake an earlier one of its connection, retransmit a
 * reset, or retransmit for a sender that crashed.
 * Must never import: lib/executor.ts, lib/task/**, bun:ffi
 */
import { SimEvent } from "./events.ts";
import { ECONNREFUSED, ECONNRESET, EPIPE, ETIMEDOUT } from "./errno.ts";
import type { SimHost } from "./host.ts";
import type { SimNet } from "./net.ts";
import {
  Flow, SEG_DATA, SEG_FIN, SEG_RST, SEG_SYN, SEG_SYNACK, ST_CONNECTING, ST_FAILED, ST_OPEN, type Segment, type SimSocket,
} from "./socket.ts";
import { EV_DATA, EV_ERROR, EV_ESTABLISHED, EV_FIN, EV_RETRY, EV_RST, EV_SYN, SYN_DROPPED, SYN_QUEUED, SYN_REFUSED } from "./trace.ts";

/** A reset (or a refusal) that travels on its own: to a socket with no flow back, or from a kernel that forgot the connection. */
class ResetEvent extends SimEvent {
  constructor(
    private readonly wire: Wire,
    readonly target: SimSocket,
    /** True: the answer to a SYN nobody listens for (ECONNREFUSED). */
    readonly refusal: boolean,
  ) {
    super();
  }
  fire(): void {
    this.wire.resetArrived(this.target, this.refusal);
  }
}

/** A connection whose last retransmission went unanswered fails (ETIMEDOUT) when its final timeout ends. */
class GiveUpEvent extends SimEvent {
  constructor(
    private readonly wire: Wire,
    readonly target: SimSocket,
    readonly connecting: boolean,
  ) {
    super();
  }
  fire(): void {
    this.wire.timedOut(this.target, this.connecting);
  }
}

/**
 * The delivery side of the simulated TCP.
 *
 * @example
 * ```ts
 * const f = new Flow(sock, null, link, net.tcp.wire.deliverFn); // delivered through the wire
 * ```
 */
export class Wire {
  /** What a flow calls when its first segment is due. */
  readonly deliverFn = (f: Flow) => this.deliver(f);

  constructor(private readonly net: SimNet) {}

  /** A kernel that has no (live) socket for what arrived answers the sender with a reset. */
  answerReset(to: SimSocket, from: SimHost): void {
    if (to.dead || to.gone) return;
    const net = this.net;
    net.schedule(new ResetEvent(this, to, false), net.now + net.link(from, to.host).latency(net.rng));
  }

  /** The first segment of `f` is due: deliver it, or lose it (cut link, crashed host). */
  private deliver(f: Flow): void {
    const seg = f.first;
    if (seg === undefined) return;
    const link = f.link;
    if (link.held) {
      f.held = true;
      link.waiting.push(f);
      return;
    }
    const dst = seg.kind === SEG_SYN ? f.from.remoteHost : f.to!.host;
    if (dst === null || !dst.up || link.cut) return this.lost(f, seg);
    switch (seg.kind) {
      case SEG_SYN:
        if (!this.arriveSyn(f, seg)) return;
        break;
      case SEG_SYNACK:
        this.arriveSynAck(f);
        break;
      case SEG_DATA:
        this.arriveData(f, seg);
        break;
      case SEG_FIN:
        this.arriveFin(f);
        break;
      default:
        this.arriveRst(f);
    }
    f.shift();
    f.retries = 0;
    const next = f.first;
    if (next !== undefined && f.pos < 0 && !f.held) this.net.schedule(f, next.at);
  }

  /** A held flow goes on (release): its first segment at `at`, the rest after it. */
  released(e: SimEvent, at: number): void {
    const f = e as Flow;
    f.held = false;
    if (f.pos < 0 && !f.empty) this.net.schedule(f, at);
  }

  /** A segment did not get through: TCP sends it again later, or gives up (ETIMEDOUT). */
  private lost(f: Flow, seg: Segment): void {
    const net = this.net;
    const from = f.from;
    // Resets are never retransmitted; a crashed sender retransmits nothing; a reset one nothing but its reset.
    if (seg.kind === SEG_RST || from.gone || from.dead || (seg.kind === SEG_SYN && from.closed)) {
      if (seg.kind === SEG_RST) f.shift();
      else f.clear();
      if (!f.empty && f.pos < 0) net.schedule(f, f.first!.at);
      return;
    }
    const syn = seg.kind === SEG_SYN || seg.kind === SEG_SYNACK;
    const limit = syn ? net.cfg.synRetries : net.cfg.tcpRetries;
    const rto = syn ? 1000 * 2 ** f.retries : Math.min(200 * 2 ** f.retries, 120_000);
    if (f.retries >= limit) {
      // The last retransmission was lost too: TCP gives up one more timeout later (Linux: a
      // connect to nowhere fails after 1 + 2 + … + 32 + 64 = 127 s).
      f.clear();
      net.schedule(new GiveUpEvent(this, from, seg.kind === SEG_SYN), net.now + rto);
      return;
    }
    f.retries++;
    net.ev(EV_RETRY, from.id, f.retries, seg.kind);
    net.schedule(f, net.now + rto);
  }

  private arriveSyn(f: Flow, seg: Segment): boolean {
    const net = this.net;
    const c = f.from;
    if (c.closed || c.dead || c.state !== ST_CONNECTING) {
      f.clear();
      return true;
    }
    const host = c.remoteHost!;
    const l = net.findListener(host, c.remoteIp, c.remotePort, c.v6);
    if (l === null) {
      net.ev(EV_SYN, c.id, SYN_REFUSED, 0);
      f.clear();
      net.schedule(new ResetEvent(this, c, true), net.now + net.link(host, c.host).latency(net.rng));
      return true;
    }
    if (l.acceptQ!.length > l.backlog) {
      net.ev(EV_SYN, c.id, SYN_DROPPED, 0);
      this.lost(f, seg);
      return false;
    }
    const s = net.connectionSocket(host, l.v6, l);
    const mapped = l.v6 && !c.v6;
    s.localIp = mapped ? `::ffff:${c.remoteIp}` : c.remoteIp;
    s.localPort = l.localPort;
    s.remoteIp = mapped ? `::ffff:${c.localIp}` : c.localIp;
    s.remotePort = c.localPort;
    s.remoteHost = c.host;
    s.state = ST_OPEN;
    s.peer = c;
    c.peer = s;
    f.to = s;
    s.listener = l;
    const back = net.link(host, c.host);
    const out = new Flow(s, c, back, this.deliverFn);
    s.out = out;
    out.send(net.now, SEG_SYNACK, null, net.rng);
    net.schedule(out, out.first!.at);
    l.acceptQ!.push(s);
    net.ev(EV_SYN, c.id, SYN_QUEUED, s.id);
    l.wakeRead();
    return true;
  }

  private arriveSynAck(f: Flow): void {
    const c = f.to!;
    if (c.gone || c.closed || c.dead || c.state !== ST_CONNECTING) {
      // The client gave up (a cancelled connect closed it) or its host restarted: it answers with a reset.
      this.answerReset(f.from, c.host);
      f.clear();
      return;
    }
    c.state = ST_OPEN;
    this.net.ev(EV_ESTABLISHED, c.id, f.from.id, 0);
    c.wakeAll();
  }

  private arriveData(f: Flow, seg: Segment): void {
    const r = f.to!;
    const x = f.from;
    const n = seg.bytes;
    if (r.gone || r.closed || r.dead) {
      // Nobody will read it: the receiving kernel resets the connection (the rest of this flow is moot).
      f.clear();
      this.answerReset(x, r.host);
      r.dead = true;
      return;
    }
    x.inflight -= n;
    r.pushRecv(seg.data!);
    this.net.ev(EV_DATA, r.id, n, 0);
    r.wakeRead();
    if (x.writeWaker !== null) x.wakeWrite();
  }

  private arriveFin(f: Flow): void {
    const r = f.to!;
    if (r.gone) {
      f.clear();
      this.answerReset(f.from, r.host);
      return;
    }
    r.rcvEof = true;
    this.net.ev(EV_FIN, r.id, 0, 0);
    r.wakeRead();
  }

  private arriveRst(f: Flow): void {
    this.resetArrived(f.to!, false);
  }

  /** A reset reached `s`: ECONNREFUSED for a connect, else ECONNRESET (EPIPE after the peer's FIN). */
  resetArrived(s: SimSocket, refusal: boolean): void {
    if (s.gone || s.dead) return;
    if (s.state === ST_CONNECTING) {
      if (!s.closed) this.connectFailed(s, refusal ? ECONNREFUSED : ECONNRESET);
      return;
    }
    if (s.state !== ST_OPEN) return;
    this.fail(s, s.rcvEof ? EPIPE : ECONNRESET);
  }

  /** TCP gave up on `s` (see lost()): ETIMEDOUT, for its connect or its connection. */
  timedOut(s: SimSocket, connecting: boolean): void {
    if (s.gone || s.dead) return;
    if (connecting) {
      if (s.state === ST_CONNECTING && !s.closed) this.connectFailed(s, ETIMEDOUT);
    } else if (s.state === ST_OPEN) this.fail(s, ETIMEDOUT);
  }

  /** The connection of `s` is over with `errno` (reported once to its owner). */
  fail(s: SimSocket, errno: number): void {
    s.dead = true;
    if (!s.closed) s.err = errno;
    s.dropSend();
    this.net.ev(EV_RST, s.id, errno, 0);
    s.wakeAll();
  }

  private connectFailed(s: SimSocket, errno: number): void {
    s.state = ST_FAILED;
    s.connErr = errno;
    s.out = null;
    this.net.unbindPort(s);
    this.net.ev(EV_ERROR, s.id, errno, 0);
    s.wakeAll();
  }
}
