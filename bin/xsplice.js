#!/usr/bin/env node
// Entry point of the `xsplice` command: the compiled command line in dist/
// (`npm ci` builds it through the `prepare` script; `npm run build` rebuilds it).
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

// Other xsplice runs recognise the holder of a seized target by this name
// (the tracer's comm) and wait for it instead of failing (src/core/session.ts).
process.title = "xsplice";
const cli = join(dirname(fileURLToPath(import.meta.url)), "..", "dist", "cli.js");
let main;
try {
  ({ main } = await import(cli));
} catch (err) {
  if (err?.code !== "ERR_MODULE_NOT_FOUND" || !String(err.message).includes(cli)) throw err;
  process.stderr.write(`xsplice: ENOENT: ${cli} is missing: build it with \`npm run build\` (npm ci does)\n`);
  process.exit(1);
}
process.exitCode = await main(process.argv.slice(2));
