/**
 * `npm run bench [-- NAME...]`: runs every `bench/*.bench.ts` (or those whose
 * file name contains one of NAME) and prints one table per benchmark file.
 */
import { readdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { type Bench, formatRows } from "./lib.ts";

const here = dirname(fileURLToPath(import.meta.url));
const filters = process.argv.slice(2);
const files = readdirSync(here)
  .filter((f) => f.endsWith(".bench.ts"))
  .filter((f) => filters.length === 0 || filters.some((n) => f.includes(n)))
  .sort();
if (files.length === 0) {
  console.error("no benchmarks matched");
  process.exit(1);
}
for (const file of files) {
  const mod = (await import(pathToFileURL(join(here, file)).href)) as { default: Bench };
  console.log(`\n== ${file.replace(".bench.ts", "")}`);
  console.log(formatRows(await mod.default()));
}
