/**
 * The readiness backends constructible on this machine (epoll and poll on Linux) against
 * the Poller contract, plus what is particular to the poll(2) backend: the pollfd array,
 * the revents mapping, parking of fds with nothing armed, and registration errors.
 */
import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import * as libc from "../ffi/libc.ts";
import * as pf from "../ffi/poll.ts";
import { EBADF, EEXIST } from "../ffi/errno.ts";
import { HAVE_EPOLL } from "../ffi/epoll.ts";
import { EpollPoller } from "../lib/driver/readiness/epoll.ts";
import { PollPoller, fromPoll, toPoll } from "../lib/driver/readiness/poll.ts";
import { ERROR, READABLE, READ_CLOSED, READ_WRITE, WRITABLE, WRITE_CLOSED } from "../lib/driver/readiness/poller.ts";
import { SysError } from "../lib/errors.ts";
import { fdCount } from "./helpers.ts";
import { collect, flagsFor, makePipe, makeSocketpair, pollerContract } from "./poller_contract.ts";

if (HAVE_EPOLL) pollerContract("epoll", "edge", () => new EpollPoller());
pollerContract("poll", "level", () => new PollPoller(), pf.POLLRDHUP !== 0);

describe("PollFds (the pollfd array)", () => {
  test("entries are 8 bytes: fd at word 2i, events and revents at halves 4i+2 and 4i+3", () => {
    const fds = new pf.PollFds(4);
    fds.push(5, pf.POLLIN);
    fds.push(-3, pf.POLLOUT | pf.POLLIN);
    const bytes = new Uint8Array(fds.i32.buffer, 0, 16);
    expect([...bytes]).toEqual([5, 0, 0, 0, 1, 0, 0, 0, 0xfd, 0xff, 0xff, 0xff, 5, 0, 0, 0]);
  });

  test("the buffer doubles when full and keeps every entry", () => {
    const fds = new pf.PollFds(2);
    for (let i = 0; i < 9; i++) fds.push(100 + i, i);
    expect(fds.capacity).toBe(16);
    expect(fds.length).toBe(9);
    for (let i = 0; i < 9; i++) {
      expect(fds.fd(i)).toBe(100 + i);
      expect(fds.events(i)).toBe(i);
    }
  });

  test("swapRemove moves the last entry into the hole and reports where it came from", () => {
    const fds = new pf.PollFds(4);
    for (let i = 0; i < 4; i++) fds.push(10 + i, i + 1);
    expect(fds.swapRemove(1)).toBe(3);
    expect([fds.fd(1), fds.events(1), fds.length]).toEqual([13, 4, 3]);
    expect(fds.swapRemove(2)).toBe(-1);
    expect(fds.length).toBe(2);
  });

  test("pollFds reports a readable pipe and leaves a negative fd unreported", () => {
    const [r, w] = makePipe();
    const fds = new pf.PollFds();
    fds.push(r, pf.POLLIN);
    fds.push(~w, pf.POLLOUT); // parked: poll() must skip it
    expect(pf.pollFds(fds, 0)).toBe(0);
    expect(libc.write(w, new Uint8Array([1]))).toBe(1);
    expect(pf.pollFds(fds, 1000)).toBe(1);
    expect(fds.revents(0) & pf.POLLIN).toBe(pf.POLLIN);
    expect(fds.revents(1)).toBe(0);
    libc.close(r);
    libc.close(w);
  });
});

describe("poll revents mapping", () => {
  test("interest maps to POLLIN|POLLRDHUP and POLLOUT", () => {
    expect(toPoll(READABLE)).toBe(pf.POLLIN | pf.POLLRDHUP);
    expect(toPoll(WRITABLE)).toBe(pf.POLLOUT);
    expect(toPoll(0)).toBe(0);
  });

  test("revents map to the portable bits as epoll's do", () => {
    expect(fromPoll(pf.POLLIN)).toBe(READABLE);
    expect(fromPoll(pf.POLLOUT)).toBe(WRITABLE);
    expect(fromPoll(pf.POLLHUP)).toBe(READABLE | WRITABLE | READ_CLOSED | WRITE_CLOSED);
    expect(fromPoll(pf.POLLERR)).toBe(READABLE | WRITABLE | ERROR);
    expect(fromPoll(pf.POLLNVAL)).toBe(READABLE | WRITABLE | ERROR);
    if (process.platform === "linux") expect(fromPoll(pf.POLLRDHUP)).toBe(READABLE | READ_CLOSED);
  });
});

describe("PollPoller specifics", () => {
  let p: PollPoller;
  let fds = 0;
  beforeEach(() => {
    fds = fdCount();
    p = new PollPoller();
  });
  afterEach(() => {
    p.close();
    expect(fdCount()).toBe(fds);
  });

  test("a hung-up fd with nothing armed is parked, not spun on; rearm reports it once more", () => {
    const [a, b] = makeSocketpair();
    p.register(a, 1, READ_WRITE);
    libc.close(b);
    expect(collect(p, 1, READ_CLOSED | WRITE_CLOSED) & (READ_CLOSED | WRITE_CLOSED)).toBe(READ_CLOSED | WRITE_CLOSED);
    for (let i = 0; i < 3; i++) expect(p.wait(0)).toBe(0);
    p.rearm(a, 1, READ_WRITE);
    expect(flagsFor(p, 1, 0) & READ_CLOSED).toBe(READ_CLOSED);
    expect(p.wait(0)).toBe(0);
    p.deregister(a);
    libc.close(a);
  });

  test("an fd closed without deregister reports ERROR (POLLNVAL) once, then stays parked", () => {
    const [r, w] = makePipe();
    p.register(r, 2, READABLE);
    libc.close(r);
    expect(flagsFor(p, 2, 1000) & ERROR).toBe(ERROR);
    expect(p.wait(0)).toBe(0);
    p.deregister(r);
    expect(p.size).toBe(0);
    libc.close(w);
  });

  test("registering an fd twice is EEXIST; registering a closed fd is EBADF", () => {
    const [r, w] = makePipe();
    p.register(r, 3, READABLE);
    expect(() => p.register(r, 4, READABLE)).toThrow(SysError);
    expect(() => p.register(r, 4, READABLE)).toThrow(expect.objectContaining({ errno: EEXIST }));
    expect(() => p.register(-1, 6, READABLE)).toThrow(expect.objectContaining({ errno: EBADF }));
    libc.close(r);
    libc.close(w);
  });

  test("a direction delivered alone is disarmed alone: the other still reports", () => {
    const [a, b] = makeSocketpair();
    p.register(a, 7, READ_WRITE);
    expect(flagsFor(p, 7, 1000) & (READABLE | WRITABLE)).toBe(WRITABLE);
    expect(libc.write(b, new Uint8Array([9]))).toBe(1);
    expect(flagsFor(p, 7, 1000) & (READABLE | WRITABLE)).toBe(READABLE);
    expect(p.wait(0)).toBe(0);
    p.deregister(a);
    libc.close(a);
    libc.close(b);
  });

  test("the poller has no pollable fd of its own and names itself poll", () => {
    expect(p.fd).toBe(-1);
    expect(p.name).toBe("poll");
  });
});
