/**
 * scripts/check-docs.ts on a small fixture package (written to a temp dir): which exports
 * count as documented, and what fails the check.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { checkDocs, type DocsResult } from "../scripts/check-docs.ts";

const FILES: Record<string, string> = {
  "package.json": JSON.stringify({ name: "fixture", version: "0.0.0" }),
  "tsconfig.json": JSON.stringify({
    compilerOptions: { target: "ESNext", module: "Preserve", moduleResolution: "bundler", allowImportingTsExtensions: true, noEmit: true, strict: true, skipLibCheck: true, types: [] },
  }),
  // Entry point 1: a proper module header, re-exports from impl.ts, a namespace of helpers.ts.
  "main.ts": `/**
 * The fixture package.
 *
 * @example
 * \`\`\`ts
 * import { good } from "fixture";
 * \`\`\`
 * @module
 */
export { good, noExample, noDoc, Documented, overloaded, broken } from "./impl.ts";
export * as helpers from "./helpers.ts";
export * as other from "./other.ts";
`,
  "impl.ts": `/** Documented, with an example.
 * @example
 * \`\`\`ts
 * good();
 * \`\`\`
 */
export function good(): void {}

/** Documented, but no example. */
export const noExample = 1;

export const noDoc = 2;

/**
 * A class.
 * @example
 * \`\`\`ts
 * new Documented();
 * \`\`\`
 */
export class Documented {}

/**
 * Overload one.
 * @example
 * \`\`\`ts
 * overloaded(1);
 * \`\`\`
 */
export function overloaded(x: number): number;
/** Overload two. */
export function overloaded(x: string): string;
export function overloaded(x: number | string): number | string {
  return x;
}

/**
 * Links to {@link Nowhere}.
 * @example
 * \`\`\`ts
 * broken;
 * \`\`\`
 */
export const broken = 3;
`,
  "helpers.ts": `/**
 * Helpers.
 * @example
 * \`\`\`ts
 * helpers.help();
 * \`\`\`
 * @module
 */
/** Helps, no example. */
export function help(): void {}
`,
  // Entry point 2: a header without @module, then a re-export of an undocumented name.
  "other.ts": `/**
 * Another entry point.
 *
 * @example
 * \`\`\`ts
 * import { bare } from "fixture/other";
 * \`\`\`
 */
export { bare } from "./bare.ts";
`,
  "bare.ts": `export function bare(): void {}\n`,
};

let root = "";
let res: DocsResult | null = null;

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), "reel-docs-"));
  for (const [path, text] of Object.entries(FILES)) {
    mkdirSync(dirname(join(root, path)), { recursive: true });
    writeFileSync(join(root, path), text);
  }
  res = await checkDocs(root, ["main.ts", "other.ts"], "tsconfig.json");
}, 60_000);

afterAll(() => rmSync(root, { recursive: true, force: true }));

describe("check-docs", () => {
  test("lists every export without a doc comment or an @example, by file, and nothing else", () => {
    expect(res).not.toBeNull();
    expect(res!.findings.map((f) => `${f.file} ${f.name}: ${f.problem}`)).toEqual([
      "bare.ts bare: no doc comment",
      "helpers.ts helpers.help: no @example",
      "impl.ts noDoc: no doc comment",
      "impl.ts noExample: no @example",
      "other.ts (module other): header is not a module comment (tag it @module)",
    ]);
  });

  test("a header comment over `export { … } from` does not document the names it re-exports", () => {
    expect(res!.findings.some((f) => f.name === "bare" && f.problem === "no doc comment")).toBe(true);
  });

  test("an overloaded function needs a comment on every signature and an example on one", () => {
    expect(res!.findings.some((f) => f.name === "overloaded")).toBe(false);
  });

  test("a broken {@link} is a typedoc problem, which fails the check", () => {
    expect(res!.problems).toEqual([`Failed to resolve link to "Nowhere" in comment for main.broken`]);
  });
});
