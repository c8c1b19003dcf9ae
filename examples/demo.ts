/**
 * `npm run demo` (placeholder until the live-patching demo lands): builds a
 * sample payload from a C fixture with gcc, ld and objcopy, then runs
 * `xsplice inspect` on it through the real command line, text and JSON.
 * Exits non-zero if anything fails.
 */
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { ROOT } from "../test/helpers/cc.ts";
import { buildFixturePayload } from "../test/helpers/payload-fixtures.ts";

function xsplice(args: string[]): string {
  const r = spawnSync(process.execPath, [join(ROOT, "bin/xsplice.js"), ...args], { encoding: "utf8" });
  if (r.status !== 0) {
    process.stderr.write(r.stderr);
    throw new Error(`xsplice ${args.join(" ")} exited with ${r.status}`);
  }
  return r.stdout;
}

try {
  const payload = buildFixturePayload({ source: "payload/xsplice-basic.c" });
  console.log(`$ xsplice inspect ${payload}`);
  process.stdout.write(xsplice(["inspect", payload]));
  console.log(`\n$ xsplice inspect ${payload} --json`);
  const doc = JSON.parse(xsplice(["inspect", payload, "--json"])) as { funcs: unknown[] };
  console.log(JSON.stringify(doc, null, 2));
  if (doc.funcs.length === 0) throw new Error("the sample payload shows no functions");
} catch (err) {
  console.error(`demo failed: ${(err as Error).message}`);
  process.exit(1);
}
