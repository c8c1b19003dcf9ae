/**
 * The SQLite amalgamation patched live (issue #12; examples/sqlite/): a
 * semantic change in one internal function (absFunc, abs.patch) made into a
 * payload by `xsplice diff` from the original and patched sqlite3.o, loaded
 * into a running multi-threaded program whose threads run checked queries,
 * with 0 wrong query results before, during and after, and the old behaviour
 * back after the revert.
 *
 * The amalgamation comes from the npm registry (better-sqlite3, pinned),
 * cached under test/.build/downloads/; without it the test fails with the
 * line that says so.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { type Program, startProgram } from "../../examples/lib/program.ts";
import { missingCommands } from "../../examples/lib/xsplice.ts";
import { buildSqlite, type SqliteBuild } from "../helpers/sqlite.ts";
import { ask, outDir, stateOf, xs } from "./_examples.ts";

/** abs(-9223372036854775808): SQLite's own answer, and the patched one. */
const UNPATCHED = "probe error=integer overflow";
const PATCHED = "probe real=9.2233720368547758e+18";

let build: SqliteBuild;
let queries: Program;

interface DiffDoc {
  funcs: { name: string; status: string; reason: string }[];
  refused: unknown[];
  stats: { functions: number; changed: number };
}

async function counts(): Promise<{ ok: number; failed: number }> {
  const line = await ask(queries, "counts", /^counts /);
  const m = /ok=(\d+) failed=(\d+)/.exec(line);
  assert.ok(m, line);
  return { ok: Number(m[1]), failed: Number(m[2]) };
}

/** Wait until the workers have answered `more` further queries, then return the counters. */
async function afterMore(more: number): Promise<{ ok: number; failed: number }> {
  const start = (await counts()).ok;
  for (;;) {
    const c = await counts();
    if (c.ok >= start + more || c.failed > 0) return c;
    await new Promise((r) => setTimeout(r, 20));
  }
}

before(async () => {
  build = await buildSqlite();
  queries = (await startProgram(build.target, ["3"])).program;
});

after(async () => {
  await queries?.stop("SIGKILL");
});

test("the unpatched program answers its checked queries, and abs(INT64_MIN) fails", async () => {
  assert.deepEqual(
    await missingCommands(["diff", "load", "revert", "unload", "get"]),
    [],
    "xsplice has the commands",
  );
  const c = await afterMore(500);
  assert.equal(c.failed, 0, queries.errors.join("\n"));
  assert.equal(await ask(queries, "probe", /^probe /), UNPATCHED);
});

test("xsplice diff: absFunc changed; functions below it in sqlite3.c changed in line numbers only", async () => {
  const out = join(outDir(), "lines.xsplice");
  const doc = (await xs([
    "diff",
    "--orig",
    build.orig,
    "--patched",
    build.patched,
    "--target",
    build.target,
    "-o",
    out,
  ])) as unknown as DiffDoc;
  const real = doc.funcs.filter((f) => f.reason !== "line numbers only");
  assert.deepEqual(
    real.map((f) => [f.name, f.status]),
    [["absFunc", "changed"]],
  );
  // SQLITE_CORRUPT_BKPT and friends embed __LINE__: the patch, one line shorter, shifts them.
  const lineOnly = doc.funcs.filter((f) => f.reason === "line numbers only");
  assert.ok(lineOnly.length > 0, "some function after absFunc embeds __LINE__");
  assert.ok(lineOnly.every((f) => f.status === "changed"));
  assert.deepEqual(doc.refused, []);
  assert.ok(doc.stats.functions > 1000, `the amalgamation's functions were compared: ${doc.stats.functions}`);
});

test("load the absFunc change live: new answer, 0 wrong query results; revert: old answer", async () => {
  const out = join(outDir(), "abs.xsplice");
  const doc = (await xs([
    "diff",
    "--orig",
    build.orig,
    "--patched",
    build.patched,
    "--target",
    build.target,
    "-o",
    out,
    "--ignore-line-changes",
  ])) as unknown as DiffDoc;
  assert.deepEqual(
    doc.funcs.map((f) => [f.name, f.status]),
    [["absFunc", "changed"]],
  );

  const pid = String(queries.pid);
  const before = await counts();
  assert.equal(before.failed, 0);
  await xs(["load", pid, out, "--name", "abs"]);
  assert.equal(await stateOf(queries.pid, "abs"), "APPLIED");
  assert.equal(await ask(queries, "probe", /^probe /), PATCHED);
  // The workers keep querying through the patched function (their queries call abs()).
  const patched = await afterMore(2000);
  assert.equal(patched.failed, 0, queries.errors.join("\n"));

  await xs(["revert", pid, "abs"]);
  assert.equal(await stateOf(queries.pid, "abs"), "CHECKED");
  assert.equal(await ask(queries, "probe", /^probe /), UNPATCHED);
  await xs(["unload", pid, "abs"]);
  const end = await afterMore(500);
  assert.equal(end.failed, 0, queries.errors.join("\n"));
  assert.ok(end.ok > before.ok + 2500, `queries kept running: ${before.ok} -> ${end.ok}`);
});
