// Describes the machine and writes a harness's section into a markdown results file.
// Each harness owns one section, delimited by HTML comment markers; writing replaces that
// section and leaves the rest of the file as it was. Must never touch other sections.
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import os from "node:os";

/** The CPU model from /proc/cpuinfo (Linux), else what node:os reports. */
function cpuModel(): string {
  try {
    const m = /^model name\s*:\s*(.+)$/m.exec(readFileSync("/proc/cpuinfo", "utf8"));
    if (m?.[1]) return m[1].trim();
  } catch {
    // not Linux: fall through
  }
  return os.cpus()[0]?.model ?? "unknown";
}

/** Output of a command's stdout, trimmed, or "unknown" when it cannot run. */
function commandOutput(argv: string[]): string {
  try {
    const r = Bun.spawnSync(argv, { stdout: "pipe", stderr: "ignore" });
    return r.exitCode === 0 ? r.stdout.toString().trim() : "unknown";
  } catch {
    return "unknown";
  }
}

/** One markdown line naming the machine: nproc, kernel, Bun and node versions, CPU model. */
export function machineLine(): string {
  const nproc = commandOutput(["nproc"]);
  const node = commandOutput(["node", "--version"]);
  return `nproc ${nproc}, kernel ${os.release()}, Bun ${Bun.version}, node ${node}, CPU ${cpuModel()}`;
}

/** Quotes one argument for a POSIX shell when it needs it. */
function shellQuote(arg: string): string {
  return /^[\w@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replaceAll("'", "'\\''")}'`;
}

/** The command line that ran this harness, e.g. `bun run bench/echo.ts --secs 5`. */
export function commandLine(script: string): string {
  return ["bun", "run", script, ...process.argv.slice(2)].map(shellQuote).join(" ");
}

/**
 * Writes `body` into `file` between the markers of section `id`, replacing that section if it
 * is there and appending it otherwise (creating the file with a title when it does not exist).
 */
export function writeSection(file: string, id: string, body: string): void {
  const begin = `<!-- ${id}:begin -->`;
  const end = `<!-- ${id}:end -->`;
  const block = `${begin}\n${body.trimEnd()}\n${end}`;
  const old = existsSync(file) ? readFileSync(file, "utf8") : "# reel benchmark results\n";
  const i = old.indexOf(begin);
  const j = old.indexOf(end, i);
  const next = i >= 0 && j >= 0 ? old.slice(0, i) + block + old.slice(j + end.length) : `${old.trimEnd()}\n\n${block}\n`;
  writeFileSync(file, next);
}
