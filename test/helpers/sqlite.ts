/**
 * The SQLite amalgamation as a live-patching subject (issue #12): fetched
 * from the npm registry in the better-sqlite3 package (which ships
 * `deps/sqlite3/sqlite3.c`), patched with `examples/sqlite/abs.patch`, and
 * built as the object pair `xsplice diff` compares plus the target program
 * (`examples/sqlite/queries.c`) linked with the original object.
 *
 * The tarball is cached under `test/.build/downloads/` and checked by
 * SHA-256; the builds under `test/.build/sqlite-<key>/`, keyed by every
 * input. The two compiles of sqlite3.c (about a minute each) run at once.
 * Used by test/examples/sqlite.test.ts and offered to bench/diff.bench.ts.
 */
import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { BUILD_DIR, ROOT } from "./cc.ts";

const execFileAsync = promisify(execFile);

/** The npm package that carries the amalgamation, pinned. */
export const SQLITE_PACKAGE = {
  name: "better-sqlite3",
  version: "12.11.1",
  tarball: "better-sqlite3-12.11.1.tgz",
  sha256: "ebf0ed75a7a59dbcb3b24bbd014ef49d9f15bc328e4adcbf516f2a8fadfa2835",
  /** SQLite's version inside it. */
  sqlite: "3.53.2",
} as const;

/** Where downloads are cached (shared with examples/zlib-cve). */
export const DOWNLOAD_DIR: string = join(BUILD_DIR, "downloads");
/** The example's semantic change. */
export const ABS_PATCH: string = join(ROOT, "examples/sqlite/abs.patch");
const QUERIES_C = join(ROOT, "examples/sqlite/queries.c");

/**
 * Flags of both objects: a live-patchable build (README.md) in sections, as
 * `xsplice diff` wants its inputs (SPEC §13). The bench times a plain
 * `gcc -O2 -c` of the same file against the diff.
 */
export const SQLITE_CFLAGS: readonly string[] = [
  "-O2",
  "-g",
  "-fPIE",
  "-flive-patching=inline-clone",
  "-fno-omit-frame-pointer",
  "-ffunction-sections",
  "-fdata-sections",
  "-DSQLITE_OMIT_LOAD_EXTENSION",
];

/** The built pair and target. */
export interface SqliteBuild {
  /** Directory holding `sqlite3.c` (original) and `sqlite3.h`. */
  origDir: string;
  /** Directory holding the patched `sqlite3.c`. */
  patchedDir: string;
  /** `gcc -c` of the original amalgamation. */
  orig: string;
  /** `gcc -c` of the patched amalgamation. */
  patched: string;
  /** examples/sqlite/queries.c linked with {@link orig}. */
  target: string;
}

async function run(cmd: string, args: string[], cwd: string): Promise<void> {
  try {
    await execFileAsync(cmd, args, { cwd, maxBuffer: 16 << 20 });
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    const last = (e.stderr ?? "").trim().split("\n").filter(Boolean).pop() ?? e.message;
    throw new Error(`${cmd} ${args.join(" ")} failed: ${last}`);
  }
}

function sha256(path: string): string {
  return createHash("sha256").update(readFileSync(path)).digest("hex");
}

/** Fetch the pinned better-sqlite3 tarball (once) with `npm pack`; returns its path. */
export async function fetchSqlitePackage(): Promise<string> {
  const cached = join(DOWNLOAD_DIR, SQLITE_PACKAGE.tarball);
  if (existsSync(cached) && sha256(cached) === SQLITE_PACKAGE.sha256) return cached;
  mkdirSync(DOWNLOAD_DIR, { recursive: true });
  const work = mkdtempSync(join(DOWNLOAD_DIR, "npm-"));
  try {
    const spec = `${SQLITE_PACKAGE.name}@${SQLITE_PACKAGE.version}`;
    try {
      await run("npm", ["pack", spec, "--silent", "--pack-destination", work], work);
    } catch (err) {
      throw new Error(`cannot fetch the SQLite amalgamation (${(err as Error).message})`);
    }
    const got = join(work, SQLITE_PACKAGE.tarball);
    const sum = existsSync(got) ? sha256(got) : "missing";
    if (sum !== SQLITE_PACKAGE.sha256)
      throw new Error(`${SQLITE_PACKAGE.tarball}: SHA-256 ${sum}, expected ${SQLITE_PACKAGE.sha256}`);
    renameSync(got, cached);
    return cached;
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

/**
 * Unpack the amalgamation, apply `abs.patch` to a copy, compile both (at
 * once) and link the target; every output is reused while its inputs are
 * the same.
 */
export async function buildSqlite(): Promise<SqliteBuild> {
  const tarball = await fetchSqlitePackage();
  const key = createHash("sha256")
    .update(SQLITE_PACKAGE.sha256)
    .update(JSON.stringify(SQLITE_CFLAGS))
    .update(readFileSync(ABS_PATCH))
    .update(readFileSync(QUERIES_C))
    .digest("hex")
    .slice(0, 12);
  const home = join(BUILD_DIR, `sqlite-${key}`);
  const b: SqliteBuild = {
    origDir: join(home, "orig"),
    patchedDir: join(home, "patched"),
    orig: join(home, "sqlite3-orig.o"),
    patched: join(home, "sqlite3-patched.o"),
    target: join(home, "queries"),
  };
  if (existsSync(b.target)) return b;
  mkdirSync(BUILD_DIR, { recursive: true });
  const tmp = mkdtempSync(`${home}.tmp`);
  try {
    const orig = join(tmp, "orig");
    const patched = join(tmp, "patched");
    mkdirSync(orig);
    mkdirSync(patched);
    const members = ["package/deps/sqlite3/sqlite3.c", "package/deps/sqlite3/sqlite3.h"];
    await run("tar", ["-xzf", tarball, "-C", orig, "--strip-components=3", ...members], tmp);
    await run("tar", ["-xzf", tarball, "-C", patched, "--strip-components=3", ...members], tmp);
    await run("patch", ["-p1", "-s", "-i", ABS_PATCH], patched);
    const cc = (dir: string, out: string) =>
      run("gcc", [...SQLITE_CFLAGS, "-c", "-o", join(tmp, out), join(dir, "sqlite3.c")], tmp);
    await Promise.all([cc(orig, "sqlite3-orig.o"), cc(patched, "sqlite3-patched.o")]);
    await run(
      "gcc",
      [
        ...SQLITE_CFLAGS.filter((f) => !f.startsWith("-D")),
        "-pie",
        "-Wl,--build-id",
        "-pthread",
        "-Wall",
        "-Wextra",
        `-I${orig}`,
        "-o",
        join(tmp, "queries"),
        QUERIES_C,
        join(tmp, "sqlite3-orig.o"),
        "-lm",
      ],
      tmp,
    );
    renameSync(tmp, home);
  } catch (err) {
    rmSync(tmp, { recursive: true, force: true });
    if (!existsSync(b.target)) throw err; // else a concurrent run put its complete build in place
  }
  return b;
}
