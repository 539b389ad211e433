#!/usr/bin/env bash
# The package, as a user installs it, and the import rules: what CI checks beside the suites.
#
#   .ci/package.sh                    every check below
#   REEL_CHECK_DOCS=0 .ci/package.sh  all but the API-doc check (step 5)
#
# 1. scripts/check-imports.ts: no value-import cycle in lib/ and ffi/, no import a module
#    header forbids ("Must never import: …").
# 2. npm pack (prepack builds dist/types), then the tarball's contents: exactly lib/**/*.ts,
#    ffi/**/*.ts, dist/types/**/*.d.ts, README.md, LICENSE, package.json — every tracked
#    source, every exports target — and `npm pack --dry-run` lists the same files.
# 3. publint --strict and attw --profile esm-only on that tarball.
# 4. A scratch project installs the tarball (as `bun add ./reel-x.y.z.tgz` would), with
#    bun init's tsconfig plus a DOM lib, plus exactOptionalPropertyTypes, and with both and
#    skipLibCheck off; tsc and `bun check` (where this Bun has it) type-check a program that
#    imports reel and reel/fs, and bun runs it; every import path the docs mention resolves.
#
# Invariants: needs node, npm and bun; offline after `bun install` (the scratch project's
# only dependency is the tarball; it borrows @types/bun from this checkout's node_modules, at
# the locked versions); each step is bounded by `timeout`; in the checkout it writes only
# node_modules/ (bun install) and dist/ (the declarations), the rest under a temp dir.
# Must never: publish, or touch the global bun/npm config.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
started=$SECONDS
step() { echo "package: $* [$((SECONDS - started)) s]"; }
fail() { echo "package: FAIL: $*" >&2; exit 1; }
# Runs a command silently; on failure prints its output and fails.
quiet() {
  local log="$TMP/quiet.log"
  "$@" >"$log" 2>&1 || { cat "$log" >&2; fail "$*"; }
}

TMP=$(mktemp -d "${TMPDIR:-/tmp}/reel-package.XXXXXX")
trap 'rm -rf "$TMP"' EXIT

quiet timeout 120 bun install --frozen-lockfile
step "dev dependencies installed (bun install --frozen-lockfile)"

# 1. Import graph.
timeout 60 bun run scripts/check-imports.ts

# 2. The tarball and its contents.
quiet timeout 120 npm pack --pack-destination "$TMP"
TGZ=$(ls "$TMP"/reel-*.tgz)
step "packed $(basename "$TGZ") ($(du -k "$TGZ" | cut -f1) KiB)"

tar -tzf "$TGZ" | sed 's#^package/##' | sort >"$TMP/packed.txt"
timeout 60 npm pack --dry-run --json --ignore-scripts 2>/dev/null \
  | bun -e 'for (const f of JSON.parse(await Bun.stdin.text())[0].files) console.log(f.path)' \
  | sort >"$TMP/dryrun.txt"
diff -u "$TMP/packed.txt" "$TMP/dryrun.txt" >/dev/null || fail "npm pack --dry-run lists other files than the tarball holds"

extra=$(grep -Ev '^((lib|ffi)/.+\.ts|dist/types/.+\.d\.ts|README\.md|LICENSE|package\.json)$' "$TMP/packed.txt" || true)
[ -z "$extra" ] || fail "the tarball holds files the package does not need:"$'\n'"$extra"
{
  printf '%s\n' README.md LICENSE package.json
  # Every exports target (types, bun, default) of every subpath.
  bun -e 'const seen = (v) => typeof v === "string" ? [v] : Object.values(v).flatMap(seen);
          for (const p of seen(JSON.parse(await Bun.file("package.json").text()).exports)) console.log(p.replace(/^\.\//, ""))'
  if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then git ls-files lib ffi; fi
} | sort -u >"$TMP/required.txt"
missing=$(comm -23 "$TMP/required.txt" "$TMP/packed.txt")
[ -z "$missing" ] || fail "the tarball lacks:"$'\n'"$missing"
step "tarball holds exactly lib, ffi, dist/types, README.md, LICENSE ($(wc -l <"$TMP/packed.txt") files); npm pack --dry-run agrees"

# 3. Linters on the tarball itself.
timeout 60 bunx publint run "$TGZ" --strict
# esm-only: reel is ESM and runs on Bun only, so require() from CommonJS (node16-cjs) and the
# pre-exports node10 resolution are not supported configurations; node16-esm and bundler are.
timeout 60 bunx attw "$TGZ" --profile esm-only --no-definitely-typed --format table-flipped --no-color
step "publint and attw clean"

# 4. A consumer's project.
C="$TMP/consumer"
mkdir -p "$C/node_modules/@types"
cat >"$C/package.json" <<EOF
{ "name": "consumer", "private": true, "type": "module", "dependencies": { "reel": "$TGZ" } }
EOF
(cd "$C" && quiet timeout 60 bun install)
for p in @types/bun @types/node bun-types undici-types; do ln -s "$REPO/node_modules/$p" "$C/node_modules/$p"; done
cat >"$C/index.ts" <<'EOF'
import { blockOn, sleep, type Future } from "reel";
import * as fs from "reel/fs";
import { unlinkSync } from "node:fs";

const path = `${process.env.TMPDIR ?? "/tmp"}/reel-consumer-${process.pid}.txt`;
const text: string = blockOn(function* () {
  yield* sleep(1);
  yield* fs.writeFile(path, new TextEncoder().encode("hello from reel/fs"));
  const bytes: Uint8Array = yield* fs.readFile(path);
  return new TextDecoder().decode(bytes);
});
unlinkSync(path);
console.log(`consumer: ${text}`);

/** Never called: proves the declarations are real types, not `any`. */
export function typesAreReal(f: Future<number>): void {
  // @ts-expect-error readFile takes a path
  fs.readFile(42);
  // @ts-expect-error a Future<number> is not a Future<string>
  const s: Future<string> = f;
  void s;
}
EOF
# Every import path the docs mention (README, docs/, JSDoc in lib/ and ffi/, examples/):
# paths.ts imports each, so the type-checks below and a bun run prove that each resolves.
grep -rhoE '(from|import\() ?"reel(/[A-Za-z0-9_./-]+)?"' README.md docs lib ffi examples \
  | grep -oE '"reel[^"]*"' | sort -u | awk '{ printf "export * as m%d from %s;\n", NR, $0 }' >"$C/paths.ts"
documented=$(grep -oE '"reel[^"]*"' "$C/paths.ts" | tr '\n' ' ')

# bun init's tsconfig (Bun 1.4), with the variations users have.
tsconfig() {
  cat >"$C/tsconfig.json" <<EOF
{
  "compilerOptions": {
    "lib": $1, "target": "ESNext", "module": "Preserve", "moduleDetection": "force",
    "jsx": "react-jsx", "allowJs": true, "types": ["bun"],
    "moduleResolution": "bundler", "allowImportingTsExtensions": true,
    "verbatimModuleSyntax": true, "noEmit": true,
    "strict": true, "skipLibCheck": $2, "noFallthroughCasesInSwitch": true,
    "noUncheckedIndexedAccess": true, "noImplicitOverride": true,
    "noUnusedLocals": false, "noUnusedParameters": false, "noPropertyAccessFromIndexSignature": false,
    "exactOptionalPropertyTypes": $3
  }
}
EOF
}
have_bun_check=0
if bun check --help >/dev/null 2>&1; then have_bun_check=1; fi
for variant in 'DOM lib|["ESNext", "DOM"]|true|false' \
  'exactOptionalPropertyTypes|["ESNext"]|true|true' \
  'DOM lib + exactOptionalPropertyTypes + skipLibCheck off|["ESNext", "DOM"]|false|true'; do
  IFS='|' read -r name lib skip exact <<<"$variant"
  tsconfig "$lib" "$skip" "$exact"
  (cd "$C" && quiet timeout 120 "$REPO/node_modules/.bin/tsc" -p . --pretty false) || fail "the consumer does not type-check with tsc ($name)"
  if [ $have_bun_check = 1 ]; then
    (cd "$C" && quiet timeout 120 bun check --no-pretty) || fail "the consumer does not type-check with bun check ($name)"
  fi
  step "consumer type-checks: $name (tsc $("$REPO/node_modules/.bin/tsc" -v | cut -d' ' -f2)$([ $have_bun_check = 1 ] && echo ", bun check"))"
done
(cd "$C" && quiet timeout 60 bun run paths.ts)
step "every documented import path resolves: $documented"
out=$(cd "$C" && timeout 60 bun run index.ts)
[ "$out" = "consumer: hello from reel/fs" ] || fail "the consumer printed: $out"
step "consumer runs: $out"

# 5. API docs: every public export has a doc comment with an @example; typedoc builds clean.
if [ "${REEL_CHECK_DOCS:-1}" = 1 ]; then
  timeout 120 bun run scripts/check-docs.ts
fi

step "all package checks passed"
