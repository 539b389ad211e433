/**
 * scripts/check-imports.ts on small fixture trees, written to a temp dir per test: what
 * counts as an import, how cycles are reported, and how the "Must never import:" header
 * rule is parsed and enforced.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { checkImports, globToRegExp } from "../scripts/check-imports.ts";

const SCRIPT = join(import.meta.dir, "..", "scripts", "check-imports.ts");
let roots: string[] = [];

/** Writes a fixture tree (repo-relative path → contents) and returns its root. */
function tree(files: Record<string, string>): string {
  const root = mkdtempSync(join(tmpdir(), "reel-imports-"));
  roots.push(root);
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(dirname(join(root, path)), { recursive: true });
    writeFileSync(join(root, path), text);
  }
  return root;
}

/** A module header with the given rule lines. */
const header = (...lines: string[]) => `/**\n * A fixture module.\n *\n${lines.map((l) => ` * ${l}\n`).join("")} */\n`;

afterEach(() => {
  for (const r of roots) rmSync(r, { recursive: true, force: true });
  roots = [];
});

describe("check-imports: the graph", () => {
  test("a tree without cycles or rules is clean", () => {
    const root = tree({
      "lib/a.ts": `import { b } from "./b.ts";\nexport const a = b;\n`,
      "lib/b.ts": `import { c } from "../ffi/c.ts";\nexport const b = c;\n`,
      "ffi/c.ts": `import { dlopen } from "bun:ffi";\nexport const c = 1;\n`,
    });
    const res = checkImports(root);
    expect(res.problems).toEqual([]);
    expect(res.files).toEqual(["ffi/c.ts", "lib/a.ts", "lib/b.ts"]);
    expect(res.edges.map((e) => `${e.from}→${e.to}`)).toEqual(["ffi/c.ts→bun:ffi", "lib/a.ts→lib/b.ts", "lib/b.ts→ffi/c.ts"]);
  });

  test("bun:ffi is imported only by ffi/ and lib/driver/uring/: anywhere else (a lazy import too) is reported", () => {
    const root = tree({
      "ffi/c.ts": `import { dlopen } from "bun:ffi";\nexport const c = 1;\n`,
      "lib/driver/uring/r.ts": `import { ptr } from "bun:ffi";\nexport const r = 1;\n`,
      "lib/io/x.ts": `import { ptr } from "bun:ffi";\nexport const x = 1;\n`,
      "lib/y.ts": `export async function y() {\n  return import("bun:ffi");\n}\n`,
      "lib/z.ts": `import type { Pointer } from "bun:ffi";\nexport type Z = Pointer;\n`,
    });
    expect(checkImports(root).problems).toEqual([
      "lib/io/x.ts:1: imports bun:ffi, which only ffi/ and lib/driver/uring/ may",
      "lib/y.ts:2: imports bun:ffi, which only ffi/ and lib/driver/uring/ may",
    ]);
  });

  test("a value-import cycle is reported as the closed path through its files", () => {
    const root = tree({
      "lib/a.ts": `import { b } from "./b.ts";\nexport const a = 1;\n`,
      "lib/b.ts": `import { c } from "./sub/c.ts";\nexport const b = 1;\n`,
      "lib/sub/c.ts": `export { a } from "../a.ts";\n`,
      "lib/d.ts": `import { a } from "./a.ts";\n`,
    });
    const res = checkImports(root);
    expect(res.cycles).toEqual([["lib/a.ts", "lib/b.ts", "lib/sub/c.ts", "lib/a.ts"]]);
    expect(res.problems).toEqual(["cycle: lib/a.ts → lib/b.ts → lib/sub/c.ts → lib/a.ts"]);
  });

  test("two separate cycles are both reported, sorted; a self-import is a cycle", () => {
    const root = tree({
      "lib/x.ts": `import "./y.ts";\n`,
      "lib/y.ts": `import "./x.ts";\n`,
      "lib/m.ts": `import "./n.ts";\n`,
      "lib/n.ts": `import "./m.ts";\n`,
      "lib/self.ts": `import "./self.ts";\n`,
    });
    expect(checkImports(root).cycles).toEqual([
      ["lib/m.ts", "lib/n.ts", "lib/m.ts"],
      ["lib/self.ts", "lib/self.ts"],
      ["lib/x.ts", "lib/y.ts", "lib/x.ts"],
    ]);
  });

  test("import type and export type are not edges, so a type-only cycle passes", () => {
    const root = tree({
      "lib/a.ts": `import type { B } from "./b.ts";\nexport type A = { b?: B };\n`,
      "lib/b.ts": `import { x } from "./c.ts";\nexport type { A } from "./a.ts";\nexport type B = number;\n`,
      "lib/c.ts": `import type { A } from "./a.ts";\nexport const x = 1;\n`,
    });
    const res = checkImports(root);
    expect(res.problems).toEqual([]);
    expect(res.edges.map((e) => `${e.from}→${e.to}`)).toEqual(["lib/b.ts→lib/c.ts"]);
  });

  test("import { type X } still loads the module at run time, so it is an edge", () => {
    const root = tree({
      "lib/a.ts": `import { type B } from "./b.ts";\nexport const a = 1;\n`,
      "lib/b.ts": `import { a } from "./a.ts";\nexport type B = number;\n`,
    });
    expect(checkImports(root).cycles).toEqual([["lib/a.ts", "lib/b.ts", "lib/a.ts"]]);
  });

  test("a dynamic import() is not part of a cycle", () => {
    const root = tree({
      "lib/a.ts": `import { b } from "./b.ts";\nexport const a = 1;\n`,
      "lib/b.ts": `export const b = () => import("./a.ts");\n`,
    });
    expect(checkImports(root).problems).toEqual([]);
  });

  test("a Worker entry named through new URL() is not an import", () => {
    const root = tree({
      "lib/a.ts": `export const w = () => new Worker(new URL("./worker.ts", import.meta.url).href);\n`,
      "lib/worker.ts": `import { w } from "./a.ts";\n`,
    });
    expect(checkImports(root).problems).toEqual([]);
  });

  test("a relative import that names no file is reported with its line", () => {
    const root = tree({ "lib/a.ts": `export const a = 1;\nimport { gone } from "./gone.ts";\n` });
    expect(checkImports(root).problems).toEqual([`lib/a.ts:2: import "./gone.ts" names no file (lib/gone.ts)`]);
  });

  test("specifiers resolve as Bun's do: exact file, then .ts, then /index.ts", () => {
    const root = tree({
      "lib/a.ts": `import "./b";\nimport "./dir";\n`,
      "lib/b.ts": ``,
      "lib/dir/index.ts": ``,
    });
    const res = checkImports(root);
    expect(res.problems).toEqual([]);
    expect(res.edges.map((e) => e.to)).toEqual(["lib/b.ts", "lib/dir/index.ts"]);
  });
});

describe("check-imports: the header rule", () => {
  test("a file that imports what its header forbids fails, naming the import line and the rule", () => {
    const root = tree({
      "lib/low.ts": header("Must never import: lib/high.ts, lib/driver/**") + `import { d } from "./driver/uring/ring.ts";\nexport const low = d;\n`,
      "lib/high.ts": `export const high = 1;\n`,
      "lib/driver/uring/ring.ts": `export const d = 1;\n`,
    });
    expect(checkImports(root).problems).toEqual([
      `lib/low.ts:6: imports lib/driver/uring/ring.ts, which its header forbids ("Must never import: … lib/driver/**", line 4)`,
    ]);
  });

  test("export … from a forbidden file is an import; import type of it is not", () => {
    const root = tree({
      "lib/low.ts": header("Must never import: lib/exec.ts") + `import type { T } from "./exec.ts";\nexport { run } from "./exec.ts";\n`,
      "lib/exec.ts": `export const run = 1;\nexport type T = number;\n`,
    });
    expect(checkImports(root).problems).toEqual([
      `lib/low.ts:7: imports lib/exec.ts, which its header forbids ("Must never import: … lib/exec.ts", line 4)`,
    ]);
  });

  test("a dynamic import() of a forbidden file breaks the rule", () => {
    const root = tree({
      "lib/low.ts": header("Must never import: lib/exec.ts") + `export const load = () => import("./exec.ts");\n`,
      "lib/exec.ts": `export const run = 1;\n`,
    });
    expect(checkImports(root).problems).toHaveLength(1);
  });

  test("bare specifiers are matched as written: bun:ffi, node:*", () => {
    const root = tree({
      "lib/a.ts": header("Must never import: bun:ffi, node:*") + `import { ptr } from "bun:ffi";\nimport { readFileSync } from "node:fs";\nimport "bun:jsc";\n`,
    });
    expect(checkImports(root).problems).toEqual([
      `lib/a.ts:6: imports bun:ffi, which its header forbids ("Must never import: … bun:ffi", line 4)`,
      `lib/a.ts:6: imports bun:ffi, which only ffi/ and lib/driver/uring/ may`, // the tree-wide rule too
      `lib/a.ts:7: imports node:fs, which its header forbids ("Must never import: … node:*", line 4)`,
    ]);
  });

  test("several rule lines add up; a final period is allowed", () => {
    const root = tree({
      "lib/a.ts": header("Must never import: lib/b.ts", "Must never import: lib/c.ts.") + `import "./b.ts";\nimport "./c.ts";\n`,
      "lib/b.ts": ``,
      "lib/c.ts": ``,
    });
    const res = checkImports(root);
    expect(res.rules.map((r) => r.patterns)).toEqual([["lib/b.ts"], ["lib/c.ts"]]);
    expect(res.problems).toHaveLength(2);
  });

  test("a rule entry that matches no file fails (a stale or misspelt rule), a specifier entry need not match", () => {
    const root = tree({ "lib/a.ts": header("Must never import: lib/executor.ts, lib/drivr/**, bun:ffi") });
    expect(checkImports(root).problems).toEqual([
      `lib/a.ts:4: rule entry "lib/drivr/**" matches no file under lib, ffi`,
      `lib/a.ts:4: rule entry "lib/executor.ts" matches no file under lib, ffi`,
    ]);
  });

  test("a rule line written as prose is reported as malformed, not guessed at", () => {
    const root = tree({
      "lib/a.ts": header("Must never import: lib/b.ts or anything under lib/driver/") + `import "./b.ts";\n`,
      "lib/b.ts": ``,
    });
    const res = checkImports(root);
    expect(res.rules).toEqual([]);
    expect(res.problems).toEqual([
      `lib/a.ts:4: malformed rule "Must never import: lib/b.ts or anything under lib/driver/": entries are comma-separated paths or globs without spaces`,
    ]);
  });

  test("only the module header holds rules; prose 'Must never:' lines are not rules", () => {
    const root = tree({
      "lib/a.ts": header("Must never: import lib/b.ts") + `import "./b.ts";\n/**\n * Must never import: lib/b.ts\n */\nexport const x = 1;\n`,
      "lib/b.ts": ``,
    });
    const res = checkImports(root);
    expect(res.rules).toEqual([]);
    expect(res.problems).toEqual([]);
  });
});

describe("check-imports: globs", () => {
  test("* stays in one segment, ** crosses segments, a trailing / means everything below", () => {
    expect(globToRegExp("lib/*.ts").test("lib/a.ts")).toBe(true);
    expect(globToRegExp("lib/*.ts").test("lib/x/a.ts")).toBe(false);
    expect(globToRegExp("lib/driver/**").test("lib/driver/uring/ring.ts")).toBe(true);
    expect(globToRegExp("lib/driver/**").test("lib/driverx.ts")).toBe(false);
    expect(globToRegExp("lib/**/ring.ts").test("lib/ring.ts")).toBe(true);
    expect(globToRegExp("lib/**/ring.ts").test("lib/driver/uring/ring.ts")).toBe(true);
    expect(globToRegExp("lib/driver/").test("lib/driver/driver.ts")).toBe(true);
    expect(globToRegExp("lib/a?.ts").test("lib/ab.ts")).toBe(true);
    expect(globToRegExp("lib/a.ts").test("lib/axts")).toBe(false);
  });
});

describe("check-imports: the command", () => {
  const cli = (root: string) => Bun.spawnSync(["bun", "run", SCRIPT, "--root", root], { stdout: "pipe", stderr: "pipe" });

  test("exits 0 on a clean tree and 1 on a cycle, printing the cycle", () => {
    const clean = tree({ "lib/a.ts": `export const a = 1;\n` });
    expect(cli(clean).exitCode).toBe(0);
    const cyclic = tree({ "lib/a.ts": `import "./b.ts";\n`, "lib/b.ts": `import "./a.ts";\n` });
    const run = cli(cyclic);
    expect(run.exitCode).toBe(1);
    expect(run.stderr.toString()).toContain("cycle: lib/a.ts → lib/b.ts → lib/a.ts");
  });

  test("exits 2 on bad usage", () => {
    expect(Bun.spawnSync(["bun", "run", SCRIPT, "--bogus"], { stderr: "pipe" }).exitCode).toBe(2);
  });
});
