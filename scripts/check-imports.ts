/**
 * The import-rule checker: builds the graph of value imports between the files of lib/ and
 * ffi/, and fails on any import cycle or on any import a file's module header forbids.
 *
 *     bun run scripts/check-imports.ts [--root DIR] [DIR…]     (default: the repo, lib ffi)
 *
 * Exit status: 0 clean, 1 a cycle, a rule break, an unresolvable import or a malformed
 * rule (each printed, one per line, sorted), 2 bad usage.
 *
 * What counts as an import (an edge of the graph):
 * - `import … from "x"`, `import "x"`, `export … from "x"`: a value import, unless the
 *   whole statement is type-only (`import type`, `export type`). An `import { type A }`
 *   whose bindings are all `type` still loads "x" at run time under verbatimModuleSyntax
 *   (it becomes `import {} from "x"`), so it counts: write `import type` instead.
 * - `import("x")` with a literal specifier counts for the header rules, not for cycles (a
 *   lazy load cannot deadlock module initialisation).
 * - A Worker entry named through `new URL("./w.ts", import.meta.url)` is not an import.
 * Relative specifiers resolve to repo-relative paths and must name an existing file; other
 * specifiers (`bun:ffi`, `node:fs`) stay as written.
 *
 * The rule line. In a file's module header (the comment block that opens the file, before
 * any statement), a line
 *
 *     * Must never import: lib/executor.ts, lib/driver/**, bun:ffi
 *
 * lists what the file may not import directly, comma-separated (a final "." is allowed).
 * An entry is either a repo-relative path glob — `*` matches within one path segment, `**`
 * any number of segments, `?` one character, and a trailing `/` means everything below —
 * which must match at least one scanned file (a stale or misspelt rule fails), or a module
 * specifier with a scheme (`bun:ffi`, `node:*`), matched against the specifier as written.
 * Entries never contain spaces: a line that does not parse is reported, not guessed at.
 * Several rule lines in one header add up. Prose "Must never:" lines are not rules.
 *
 * One rule holds for the whole tree without a header line: only ffi/ and
 * lib/driver/uring/ import `bun:ffi` (every other layer reaches the kernel through them).
 *
 * Invariants: deterministic (files, cycles and findings are sorted); reads files only.
 *
 * Must never: run or import the code it checks, count a type-only import as an edge, or
 * pass a header rule it could not parse.
 */
import { existsSync, readFileSync, readdirSync, statSync } from "node:fs";
import { dirname, join, posix, relative, resolve, sep } from "node:path";
import ts from "typescript";

/** One import statement of a scanned file. */
export interface ImportEdge {
  /** Repo-relative path of the importing file. */
  readonly from: string;
  /** Repo-relative path of the imported file, or the specifier as written (`bun:ffi`). */
  readonly to: string;
  /** The specifier as written. */
  readonly specifier: string;
  /** 1-based line of the statement. */
  readonly line: number;
  /** True for a relative specifier that names no file. */
  readonly unresolved: boolean;
  /** True for `import("x")`: checked against the rules, not part of cycles. */
  readonly dynamic: boolean;
}

/** A file's parsed "Must never import:" rule. */
export interface ImportRule {
  readonly file: string;
  readonly line: number;
  readonly patterns: readonly string[];
}

/** What one run found; `problems` is empty when the tree is clean. */
export interface CheckResult {
  readonly files: readonly string[];
  readonly edges: readonly ImportEdge[];
  readonly rules: readonly ImportRule[];
  /** Each cycle as a closed path of files: [a, b, …, a]. */
  readonly cycles: readonly (readonly string[])[];
  readonly problems: readonly string[];
}

const RULE_PREFIX = /^\s*\*?\s*Must never import:(.*)$/;
const SCHEME = /^[a-z][a-z0-9+.-]*:/i;

/** Turns a rule glob into a RegExp over repo-relative paths (or specifiers). */
export function globToRegExp(glob: string): RegExp {
  const g = glob.endsWith("/") ? `${glob}**` : glob;
  let re = "";
  for (let i = 0; i < g.length; i++) {
    const c = g[i]!;
    if (c === "*" && g[i + 1] === "*") {
      i++;
      if (g[i + 1] === "/") {
        i++;
        re += "(?:[^/]+/)*"; // "**/": zero or more whole segments
      } else {
        re += ".*"; // a final "**": everything below
      }
    } else if (c === "*") re += "[^/]*";
    else if (c === "?") re += "[^/]";
    else re += c.replace(/[.+^${}()|[\]\\]/g, "\\$&");
  }
  return new RegExp(`^${re}$`);
}

/** The rule lines of a file's module header, parsed; malformed ones go to `problems`. */
export function parseRules(file: string, text: string, problems: string[]): ImportRule[] {
  const header = /^\s*\/\*[\s\S]*?\*\//.exec(text);
  if (header === null) return [];
  const rules: ImportRule[] = [];
  const lines = header[0].split("\n");
  for (let i = 0; i < lines.length; i++) {
    const m = RULE_PREFIX.exec(lines[i]!.replace(/\*\/\s*$/, ""));
    if (m === null) continue;
    const where = `${file}:${i + 1}`;
    const body = m[1]!.trim().replace(/\.$/, "");
    const patterns = body.split(",").map((p) => p.trim());
    const bad = patterns.filter((p) => p === "" || /\s/.test(p));
    if (bad.length > 0 || body === "") {
      problems.push(`${where}: malformed rule "Must never import:${m[1]}": entries are comma-separated paths or globs without spaces`);
      continue;
    }
    rules.push({ file, line: i + 1, patterns });
  }
  return rules;
}

/** Repo-relative, '/'-separated. */
function rel(root: string, abs: string): string {
  return relative(root, abs).split(sep).join("/");
}

/** Every .ts file under the given directories of `root`, sorted. */
function listFiles(root: string, dirs: readonly string[]): string[] {
  const out: string[] = [];
  const walk = (abs: string): void => {
    for (const name of readdirSync(abs).sort()) {
      const p = join(abs, name);
      if (statSync(p).isDirectory()) walk(p);
      else if (name.endsWith(".ts") && !name.endsWith(".d.ts")) out.push(rel(root, p));
    }
  };
  for (const d of dirs) if (existsSync(join(root, d))) walk(join(root, d));
  return out.sort();
}

/** Resolves a relative specifier from `from` (repo-relative) as Bun would: exact, .ts, /index.ts. */
function resolveRelative(root: string, from: string, spec: string): string | null {
  const base = posix.normalize(posix.join(posix.dirname(from), spec));
  for (const cand of [base, `${base}.ts`, `${base}/index.ts`]) {
    const abs = join(root, cand);
    if (existsSync(abs) && statSync(abs).isFile()) return cand;
  }
  return null;
}

/** The import statements of one file (value imports and dynamic imports only). */
export function importsOf(root: string, file: string, text: string): ImportEdge[] {
  const sf = ts.createSourceFile(file, text, ts.ScriptTarget.ESNext, true, ts.ScriptKind.TS);
  const edges: ImportEdge[] = [];
  const add = (node: ts.Node, specNode: ts.Expression, dynamic: boolean): void => {
    if (!ts.isStringLiteralLike(specNode)) return;
    const specifier = specNode.text;
    const line = sf.getLineAndCharacterOfPosition(node.getStart(sf)).line + 1;
    if (specifier.startsWith("./") || specifier.startsWith("../")) {
      const to = resolveRelative(root, file, specifier);
      edges.push({ from: file, to: to ?? posix.normalize(posix.join(posix.dirname(file), specifier)), specifier, line, unresolved: to === null, dynamic });
    } else {
      edges.push({ from: file, to: specifier, specifier, line, unresolved: false, dynamic });
    }
  };
  const visit = (node: ts.Node): void => {
    if (ts.isImportDeclaration(node)) {
      if (node.importClause?.isTypeOnly !== true) add(node, node.moduleSpecifier, false);
    } else if (ts.isExportDeclaration(node)) {
      if (node.moduleSpecifier !== undefined && !node.isTypeOnly) add(node, node.moduleSpecifier, false);
    } else if (ts.isCallExpression(node) && node.expression.kind === ts.SyntaxKind.ImportKeyword) {
      const arg = node.arguments[0];
      if (arg !== undefined) add(node, arg, true);
    }
    ts.forEachChild(node, visit);
  };
  visit(sf);
  return edges;
}

/** Cycles of the static value-import graph: one closed path per strongly connected component. */
export function findCycles(files: readonly string[], edges: readonly ImportEdge[]): string[][] {
  const next = new Map<string, string[]>();
  for (const f of files) next.set(f, []);
  for (const e of edges) {
    if (e.dynamic || e.unresolved || !next.has(e.to)) continue;
    const list = next.get(e.from)!;
    if (!list.includes(e.to)) list.push(e.to);
  }
  for (const list of next.values()) list.sort();

  // Tarjan's strongly connected components, iterative (no recursion limit on deep trees).
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const onStack = new Set<string>();
  const stack: string[] = [];
  const sccs: string[][] = [];
  let counter = 0;
  for (const start of files) {
    if (index.has(start)) continue;
    const work: [string, number][] = [[start, 0]];
    index.set(start, counter);
    low.set(start, counter++);
    stack.push(start);
    onStack.add(start);
    while (work.length > 0) {
      const top = work[work.length - 1]!;
      const [v, i] = top;
      const succ = next.get(v)!;
      if (i < succ.length) {
        top[1]++;
        const w = succ[i]!;
        if (!index.has(w)) {
          index.set(w, counter);
          low.set(w, counter++);
          stack.push(w);
          onStack.add(w);
          work.push([w, 0]);
        } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, index.get(w)!));
        continue;
      }
      work.pop();
      if (work.length > 0) {
        const parent = work[work.length - 1]![0];
        low.set(parent, Math.min(low.get(parent)!, low.get(v)!));
      }
      if (low.get(v) === index.get(v)) {
        const comp: string[] = [];
        let w: string;
        do {
          w = stack.pop()!;
          onStack.delete(w);
          comp.push(w);
        } while (w !== v);
        if (comp.length > 1 || next.get(v)!.includes(v)) sccs.push(comp.sort());
      }
    }
  }

  // One concrete cycle per component: the shortest path back to its first file (BFS).
  const cycles = sccs.map((comp) => {
    const inComp = new Set(comp);
    const first = comp[0]!;
    const prev = new Map<string, string>();
    const queue = [first];
    let end: string | null = null;
    while (queue.length > 0 && end === null) {
      const v = queue.shift()!;
      for (const w of next.get(v)!) {
        if (!inComp.has(w)) continue;
        if (w === first) {
          end = v;
          break;
        }
        if (!prev.has(w)) {
          prev.set(w, v);
          queue.push(w);
        }
      }
    }
    const path = [first];
    for (let v = end!; v !== first; v = prev.get(v)!) path.splice(1, 0, v);
    path.push(first);
    return path;
  });
  return cycles.sort((a, b) => a.join(" ").localeCompare(b.join(" ")));
}

/** The folders allowed to import bun:ffi (see the module header). */
const FFI_ALLOWED = ["ffi/", "lib/driver/uring/"];

/** Checks the tree under `root`: cycles, rule breaks, unresolved imports, malformed rules. */
export function checkImports(root: string, dirs: readonly string[] = ["lib", "ffi"]): CheckResult {
  const files = listFiles(root, dirs);
  const problems: string[] = [];
  const edges: ImportEdge[] = [];
  const rules: ImportRule[] = [];
  for (const f of files) {
    const text = readFileSync(join(root, f), "utf8");
    edges.push(...importsOf(root, f, text));
    rules.push(...parseRules(f, text, problems));
  }
  for (const e of edges) {
    if (e.unresolved) problems.push(`${e.from}:${e.line}: import "${e.specifier}" names no file (${e.to})`);
  }
  for (const r of rules) {
    for (const p of r.patterns) {
      const re = globToRegExp(p);
      if (!SCHEME.test(p) && !files.some((f) => re.test(f))) {
        problems.push(`${r.file}:${r.line}: rule entry "${p}" matches no file under ${dirs.join(", ")}`);
      }
      for (const e of edges) {
        if (e.from !== r.file || !re.test(e.to)) continue;
        problems.push(`${e.from}:${e.line}: imports ${e.to}, which its header forbids ("Must never import: … ${p}", line ${r.line})`);
      }
    }
  }
  for (const e of edges) {
    if (e.to === "bun:ffi" && !FFI_ALLOWED.some((d) => e.from.startsWith(d))) {
      problems.push(`${e.from}:${e.line}: imports bun:ffi, which only ${FFI_ALLOWED.join(" and ")} may`);
    }
  }
  const cycles = findCycles(files, edges);
  for (const c of cycles) problems.push(`cycle: ${c.join(" → ")}`);
  return { files, edges, rules, cycles, problems: [...new Set(problems)].sort() };
}

function main(argv: readonly string[]): number {
  let root = resolve(dirname(new URL(import.meta.url).pathname), "..");
  const dirs: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === "--root") {
      const v = argv[++i];
      if (v === undefined) return usage("--root needs a directory");
      root = resolve(v);
    } else if (a === "-h" || a === "--help") return usage(null);
    else if (a.startsWith("-")) return usage(`unknown option ${a}`);
    else dirs.push(a);
  }
  const res = checkImports(root, dirs.length > 0 ? dirs : ["lib", "ffi"]);
  for (const p of res.problems) console.error(p);
  const value = res.edges.filter((e) => !e.dynamic && res.files.includes(e.to)).length;
  const summary = `check-imports: ${res.files.length} files, ${value} value imports, ${res.rules.length} header rules, ${res.cycles.length} cycles`;
  if (res.problems.length > 0) {
    console.error(`${summary}: ${res.problems.length} problem(s)`);
    return 1;
  }
  console.log(`${summary}: clean`);
  return 0;
}

function usage(err: string | null): number {
  if (err !== null) console.error(`check-imports: ${err}`);
  console.error("usage: bun run scripts/check-imports.ts [--root DIR] [DIR…]   (default DIRs: lib ffi)");
  return err === null ? 0 : 2;
}

if (import.meta.main) process.exit(main(process.argv.slice(2)));
