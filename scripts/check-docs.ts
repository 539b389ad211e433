/**
 * The API-docs check: typedoc reads the TSDoc comments of everything `reel` and `reel/fs`
 * export (lib/index.ts, lib/fs/index.ts), and this script fails unless every public export
 * has a doc comment with an `@example`, every `{@link}` resolves and typedoc reports no
 * problem with a comment.
 *
 *     bun run scripts/check-docs.ts [--out DIR]
 *
 * `--out DIR` also writes the HTML API docs there. Exit status: 0 clean; 1 an export
 * without a doc comment or an `@example`, a broken link, or a typedoc warning or error
 * while reading the comments (all printed, grouped by file, sorted); 2 bad usage or a
 * failed conversion.
 *
 * What is checked, per public export (a top-level name of either entry point):
 * - a doc comment with a non-empty summary — on the declaration, or on each call signature
 *   of a function (typedoc keeps a function's comment there);
 * - an `@example` block in that comment (on one of the signatures for an overloaded
 *   function);
 * - each entry point's header: typedoc shows it as the module's page only when it is tagged
 *   `@module`; it needs an `@example` too;
 * - `export * as fs` is a reference to the `reel/fs` module, whose own header comment and
 *   exports are checked as that entry point.
 * Members (methods, properties) are not required to have comments here. typedoc's
 * "referenced but not included" notes (an internal type named in a public signature) are
 * printed as notes and do not fail the check.
 *
 * Invariants: deterministic output (sorted by file, then name); reads the sources only,
 * writes only under `--out`.
 *
 * Must never: run the code it documents, or pass an export it could not find a comment for.
 */
import { resolve } from "node:path";
import { Application, type Comment, ConsoleLogger, type DeclarationReflection, LogLevel, ReflectionKind, type ProjectReflection } from "typedoc";

const ROOT = resolve(import.meta.dir, "..");
const ENTRY_POINTS = ["lib/index.ts", "lib/fs/index.ts"];

/** One problem with one export. */
export interface Finding {
  readonly file: string;
  readonly name: string;
  readonly kind: string;
  readonly problem: "no doc comment" | "no @example" | "header is not a module comment (tag it @module)";
}

/** Collects typedoc's messages instead of printing them. */
class Collector extends ConsoleLogger {
  readonly messages: { level: LogLevel; text: string }[] = [];
  override log(message: string, level: Exclude<LogLevel, LogLevel.None>): void {
    // eslint-disable-next-line no-control-regex
    this.messages.push({ level, text: message.replace(/\x1b\[[0-9;]*m/g, "").replace(/^\[(warning|error|info)\] /, "").trim() });
  }
}

const hasText = (c: Comment | undefined): boolean => c !== undefined && c.summary.some((p) => p.text.trim() !== "");
const hasExample = (c: Comment | undefined): boolean => c?.blockTags.some((t) => t.tag === "@example") === true;

/**
 * The comments that document an export: its own, or its call signatures'. Only a comment
 * written in the declaring file counts: typedoc also hands the comment of an `export { … }
 * from` statement (an entry point's header, when it is not tagged `@module`) to every name
 * the statement re-exports, which documents nothing.
 */
function commentsOf(r: DeclarationReflection, root: string): (Comment | undefined)[] {
  const file = r.sources?.[0]?.fileName;
  const own = (c: Comment | undefined) => (c !== undefined && file !== undefined && c.sourcePath !== undefined && c.sourcePath !== resolve(root, file) ? undefined : c);
  const comment = own(r.comment);
  if (hasText(comment) || r.signatures === undefined || r.signatures.length === 0) return [comment];
  return r.signatures.map((s) => own(s.comment));
}

/** Every public export without a doc comment or an @example, sorted by file then name. */
export function findUndocumented(project: ProjectReflection, root: string): { findings: Finding[]; exports: number } {
  const findings: Finding[] = [];
  let exports = 0;
  const check = (r: DeclarationReflection, name: string, fallbackFile: string): void => {
    // `export * as fs from "./fs/index.ts"`: a reference to the reel/fs entry point, checked there.
    if (r.kind === ReflectionKind.Reference) return;
    exports++;
    const file = r.sources?.[0]?.fileName ?? fallbackFile;
    const kind = ReflectionKind.singularString(r.kind).toLowerCase();
    const comments = commentsOf(r, root);
    if (!comments.every(hasText)) findings.push({ file, name, kind, problem: "no doc comment" });
    else if (!comments.some(hasExample)) findings.push({ file, name, kind, problem: "no @example" });
    // A namespace export (`export * as ns` of a module that is not an entry point): its members too.
    if (r.kind === ReflectionKind.Namespace) for (const c of r.children ?? []) check(c, `${name}.${c.name}`, file);
  };
  // One entry point: the project is the module. Several: one module reflection each.
  const kids = project.children ?? [];
  const modules = kids.length > 0 && kids.every((k) => k.kind === ReflectionKind.Module) ? kids : null;
  for (const mod of modules ?? []) for (const r of mod.children ?? []) check(r, r.name, mod.sources?.[0]?.fileName ?? mod.name);
  if (modules === null) for (const r of kids) check(r, r.name, project.name);
  // An entry point's header documents the import path itself. typedoc takes a file's first
  // comment as the module's only when it carries @module.
  const headers: { name: string; file: string; comment: Comment | undefined }[] =
    modules?.map((m) => ({ name: m.name, file: m.sources?.[0]?.fileName ?? m.name, comment: m.comment })) ?? [{ name: project.name, file: project.name, comment: project.comment }];
  for (const h of headers) {
    exports++;
    if (!hasText(h.comment)) findings.push({ file: h.file, name: `(module ${h.name})`, kind: "module", problem: "header is not a module comment (tag it @module)" });
    else if (!hasExample(h.comment)) findings.push({ file: h.file, name: `(module ${h.name})`, kind: "module", problem: "no @example" });
  }
  const seen = new Set<string>();
  const unique = findings.filter((f) => {
    const key = `${f.file}\0${f.name}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
  unique.sort((a, b) => (a.file === b.file ? a.name.localeCompare(b.name) : a.file.localeCompare(b.file)));
  return { findings: unique, exports };
}

/** What one run found. */
export interface DocsResult {
  /** Exports (and entry-point headers) checked. */
  readonly exports: number;
  readonly findings: readonly Finding[];
  /** typedoc warnings and errors while reading comments, and broken links: these fail. */
  readonly problems: readonly string[];
  /** Internal types named in public signatures: printed, not failing. */
  readonly notes: readonly string[];
}

/** Runs typedoc over `entryPoints` (paths relative to `root`); writes HTML to `out` if given. */
export async function checkDocs(root: string, entryPoints: readonly string[], tsconfig: string, out: string | null = null): Promise<DocsResult | null> {
  const app = await Application.bootstrapWithPlugins({
    entryPoints: entryPoints.map((e) => resolve(root, e)),
    tsconfig: resolve(root, tsconfig),
    basePath: root,
    plugin: [],
    sort: ["source-order"],
    excludePrivate: true,
    excludeInternal: true,
    // Source links without asking git: a clone without a usable remote would make typedoc warn.
    disableGit: true,
    sourceLinkTemplate: "{path}#L{line}",
    validation: { notExported: false, invalidLink: true, rewrittenLink: true, notDocumented: false, unusedMergeModuleWith: true },
  });
  const log = new Collector();
  app.logger = log;
  const project = await app.convert();
  if (project === undefined) {
    for (const m of log.messages) console.error(m.text);
    return null;
  }
  app.validate(project); // broken {@link}s: problems
  const problems = log.messages.filter((m) => m.level >= LogLevel.Warn).map((m) => m.text);

  log.messages.length = 0;
  app.options.setValue("validation", { notExported: true, invalidLink: false, rewrittenLink: false, notDocumented: false, unusedMergeModuleWith: false });
  app.validate(project);
  const notes = log.messages.filter((m) => m.level >= LogLevel.Warn).map((m) => m.text);

  if (out !== null && problems.length === 0) await app.generateDocs(project, out);
  return { ...findUndocumented(project, root), problems: problems.sort(), notes: notes.sort() };
}

async function main(argv: readonly string[]): Promise<number> {
  let out: string | null = null;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === "--out") {
      const v = argv[++i];
      if (v === undefined) return usage("--out needs a directory");
      out = resolve(v);
    } else if (a === "-h" || a === "--help") return usage(null);
    else return usage(`unknown argument ${a}`);
  }

  const res = await checkDocs(ROOT, ENTRY_POINTS, "tsconfig.json", out);
  if (res === null) {
    console.error("check-docs: typedoc could not convert the project");
    return 2;
  }
  let file = "";
  for (const f of res.findings) {
    if (f.file !== file) console.log((file = f.file));
    console.log(`  ${f.name} (${f.kind}): ${f.problem}`);
  }
  for (const p of res.problems) console.log(`typedoc: ${p}`);
  if (res.notes.length > 0) {
    console.log(`notes (not failing): ${res.notes.length} internal type(s) named in public signatures`);
    for (const n of res.notes) console.log(`  ${n}`);
  }
  if (out !== null && res.problems.length === 0) console.log(`check-docs: API docs written to ${out}`);
  const noDoc = res.findings.filter((f) => f.problem === "no doc comment").length;
  const noExample = res.findings.filter((f) => f.problem === "no @example").length;
  const headers = res.findings.length - noDoc - noExample;
  const summary = `check-docs: ${res.exports} public exports; ${noDoc} without a doc comment, ${noExample} without an @example, ${headers} entry header(s) not tagged @module, ${res.problems.length} typedoc problem(s)`;
  if (res.findings.length > 0 || res.problems.length > 0) {
    console.error(`${summary}: FAIL`);
    return 1;
  }
  console.log(`${summary}: clean`);
  return 0;
}

function usage(err: string | null): number {
  if (err !== null) console.error(`check-docs: ${err}`);
  console.error("usage: bun run scripts/check-docs.ts [--out DIR]");
  return err === null ? 0 : 2;
}

if (import.meta.main) process.exit(await main(process.argv.slice(2)));
