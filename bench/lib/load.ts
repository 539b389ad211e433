// Runs the echo-load client against a running server and parses its one-line report.
// A load that fails (non-zero exit, no report, timeout) is a failed *run*, returned as data;
// nothing here throws for a misbehaving server or client.
import { hasExited, killChild, spawnChild } from "./children.ts";
import { type Running, stderrReason } from "./servers.ts";

/** One load shape: CONNS connections × SIZE-byte messages, PIPELINE in flight per connection. */
export interface LoadSpec {
  readonly name: string;
  readonly conns: number;
  readonly size: number;
  readonly pipeline: number;
}

/** The default loads, in order. */
export const DEFAULT_LOADS = ["1x64", "64x64", "256x64", "64x4096", "16x64p16"];

/**
 * Parses a load name `CONNSxSIZE[pPIPELINE]`, e.g. `64x4096` or `16x64p16`.
 * @returns the load, or null when the name does not have that shape.
 */
export function parseLoad(name: string): LoadSpec | null {
  const m = /^(\d+)x(\d+)(?:p(\d+))?$/.exec(name);
  if (!m) return null;
  const conns = Number(m[1]);
  const size = Number(m[2]);
  const pipeline = m[3] === undefined ? 1 : Number(m[3]);
  if (conns < 1 || size < 1 || pipeline < 1 || pipeline > 64) return null;
  return { name, conns, size, pipeline };
}

/** What one run of echo-load measured. Numbers are absent when the run produced no report. */
export interface RunResult {
  /** exit status 0 and a parsed report */
  readonly ok: boolean;
  readonly msgsPerSec?: number;
  readonly p50us?: number;
  readonly p99us?: number;
  readonly cpuUsPerMsg?: number;
  /** the report's errors= count; a failed run without a count counts as 1 */
  readonly errors: number;
  /** why the run failed, when it did */
  readonly note?: string;
}

/** Parses `key=value` pairs of an echo-load report line into numbers. */
export function parseReport(line: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const tok of line.trim().split(/\s+/)) {
    const eq = tok.indexOf("=");
    if (eq <= 0) continue;
    const v = Number(tok.slice(eq + 1));
    if (Number.isFinite(v)) out.set(tok.slice(0, eq), v);
  }
  return out;
}

/** Builds a RunResult from echo-load's exit code and output. */
function toResult(code: number, stdout: string[], stderr: string[], serverDied: boolean): RunResult {
  const line = stdout.findLast((l) => l.includes("msgs/s="));
  const kv = line ? parseReport(line) : new Map<string, number>();
  const reported = kv.get("errors");
  const ok = code === 0 && line !== undefined && !serverDied;
  const firstErr = stderrReason(stderr);
  const note = ok
    ? undefined
    : serverDied
      ? "server exited during the run"
      : (firstErr ?? (line ? `echo-load exited ${code}` : `echo-load exited ${code} without a report`));
  return {
    ok,
    msgsPerSec: kv.get("msgs/s"),
    p50us: kv.get("p50_us"),
    p99us: kv.get("p99_us"),
    cpuUsPerMsg: kv.get("srv_cpu_us/msg"),
    errors: reported ?? (ok ? 0 : 1),
    note,
  };
}

/**
 * Runs `echoLoad HOST PORT CONNS SIZE SECS PIPELINE` against `server`, with
 * ECHO_LOAD_SERVER_PID set so the report includes the server's CPU per message.
 * Killed (and reported as failed) when it runs `secs + 15` seconds.
 */
export async function runLoad(echoLoad: string, server: Running, load: LoadSpec, secs: number): Promise<RunResult> {
  const argv = [echoLoad, server.host, String(server.port), String(load.conns), String(load.size), String(secs), String(load.pipeline)];
  const child = spawnChild("echo-load", argv, { ECHO_LOAD_SERVER_PID: String(server.child.pid) });
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    void killChild(child);
  }, (secs + 15) * 1000);
  const code = await child.exited;
  clearTimeout(timer);
  if (timedOut) return { ok: false, errors: 1, note: `echo-load did not finish within ${secs + 15} s` };
  return toResult(code, child.stdout, child.stderr, hasExited(server.child));
}
