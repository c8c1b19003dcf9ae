/**
 * `xsplice diff` on a big object pair (SPEC §13; goal: < 2 s, < 1 GiB, and
 * ≤ 0.5× the compile of the same file): the SQLite amalgamation (from the
 * better-sqlite3 npm tarball, `fetchSqlite` of elf-parse.bench.ts) built
 * with `gcc -O2 -fPIC -ffunction-sections -fdata-sections -c`, and the same
 * file with one semantic change in an internal function (absFunc's error
 * text), diffed against the shared library linked from the original. The
 * baseline, `gcc -c` of the original, is measured in the same run; the
 * objects and the library are cached under bench/.build/diff/. Peak memory is
 * that of a separate `xsplice diff` process, read with GNU time's `%M`.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { diffObjects } from "../src/build/diff/index.ts";
import { fetchSqlite } from "./elf-parse.bench.ts";
import { type Bench, sample, stats } from "./lib.ts";

const HERE = dirname(fileURLToPath(import.meta.url));
const BUILD = join(HERE, ".build", "diff");
const BIN = join(HERE, "..", "bin", "xsplice.js");
const CFLAGS = ["-O2", "-fPIC", "-ffunction-sections", "-fdata-sections", "-c"];

/** The patched amalgamation: absFunc's overflow message changed (a string, so absFunc changes). */
function patchedSource(orig: string): string {
  const dest = join(BUILD, "patched", "sqlite3.c");
  if (existsSync(dest)) return dest;
  const text = readFileSync(orig, "utf8");
  const at = text.indexOf('"integer overflow"', text.indexOf("static void absFunc("));
  if (at < 0) throw new Error("absFunc's overflow message not found in sqlite3.c");
  mkdirSync(dirname(dest), { recursive: true });
  writeFileSync(dest, `${text.slice(0, at)}"integer overflow in abs()"${text.slice(at + 18)}`);
  return dest;
}

function compile(source: string, out: string): void {
  // Relative, so that STT_FILE is "sqlite3.c" on both sides, as in a tree built in place.
  execFileSync("gcc", [...CFLAGS, "-o", `${out}.tmp`, basename(source)], {
    stdio: "pipe",
    cwd: dirname(source),
  });
  renameSync(`${out}.tmp`, out);
}

const bench: Bench = async () => {
  const sqlite = fetchSqlite();
  if (sqlite === undefined) throw new Error("sqlite3.c unavailable (npm pack better-sqlite3 failed)");
  mkdirSync(join(BUILD, "orig"), { recursive: true });
  const origSrc = join(BUILD, "orig", "sqlite3.c");
  if (!existsSync(origSrc)) writeFileSync(origSrc, readFileSync(sqlite));
  const patchedSrc = patchedSource(origSrc);
  const orig = join(BUILD, "orig", "sqlite3.o");
  const patched = join(BUILD, "patched", "sqlite3.o");
  const lib = join(BUILD, "libsqlite3.so");

  // The baseline, every run: the compile of the original file (its output is the cached object).
  const scratch = join(BUILD, "baseline.o");
  const gccMs = await sample(() => compile(origSrc, scratch), 1, 0);
  if (!existsSync(orig)) renameSync(scratch, orig);
  else rmSync(scratch, { force: true });
  if (!existsSync(patched)) compile(patchedSrc, patched);
  if (!existsSync(lib))
    execFileSync("gcc", ["-shared", "-Wl,--build-id", "-o", lib, orig], { stdio: "pipe" });

  const out = join(BUILD, "abs.xsplice");
  let summary = "";
  const ours = await sample(
    () => {
      const r = diffObjects({ pairs: [{ orig, patched }], target: lib, out });
      const changed = r.all.filter((f) => f.status === "changed").map((f) => f.name);
      summary = `${r.stats.functions} functions, changed: ${changed.join(", ")}`;
    },
    3,
    1,
  );

  const timed = spawnSync(
    "/usr/bin/time",
    [
      "-f",
      "%M",
      process.execPath,
      BIN,
      "diff",
      "--orig",
      orig,
      "--patched",
      patched,
      "--target",
      lib,
      "-o",
      out,
    ],
    { encoding: "utf8" },
  );
  const kb = Number(timed.stderr.trim().split("\n").pop());
  const rss =
    Number.isFinite(kb) && timed.status === 0
      ? `peak RSS ${(kb / 1024).toFixed(0)} MiB (CLI process)`
      : "peak RSS n/a";
  const size = (readFileSync(orig).length / 1e6).toFixed(1);
  return [
    {
      name: "xsplice diff sqlite3.o pair (in process)",
      stats: stats(ours),
      baseline: { name: "gcc -O2 -c sqlite3.c", stats: stats(gccMs) },
      note: `${size} MB object, ${summary}; ${rss}`,
    },
  ];
};

export default bench;
