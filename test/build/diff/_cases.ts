/**
 * The diff catalogue's builds: a case of test/fixtures/diff/<case>/ is C
 * sources and a `fix.patch`; it is copied twice under test/.build/diff/
 * (original, and patched with `patch -p1`), each copy compiled in its own
 * directory with the flags of a live-patchable target (SPEC §13), and the
 * target linked from the original objects. Keyed by a hash of the fixture
 * files, so a re-run reuses the builds and a changed fixture rebuilds.
 */
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync } from "node:fs";
import { join } from "node:path";
import { BUILD_DIR, FIXTURES, INCLUDE } from "../../helpers/cc.ts";

/** gcc flags of every object of the catalogue: a target meant for live patching, and its patched twin. */
export const CASE_CFLAGS = [
  "-O2",
  "-g",
  "-ffunction-sections",
  "-fdata-sections",
  "-flive-patching=inline-clone",
  "-fno-omit-frame-pointer",
  `-I${INCLUDE}`,
];

/** A built case. */
export interface BuiltCase {
  dir: string;
  /** Object pairs (original, patched), one per source of the target. */
  pairs: { orig: string; patched: string }[];
  /** The program to run. */
  exe: string;
  /** The object the payload patches: the program, or its library for the shared-library case. */
  target: string;
}

function run(cmd: string, args: string[], cwd: string): void {
  try {
    execFileSync(cmd, args, { cwd, stdio: ["ignore", "pipe", "pipe"] });
  } catch (err) {
    const e = err as { stderr?: Buffer; message: string };
    throw new Error(`${cmd} ${args.join(" ")} in ${cwd} failed:\n${e.stderr?.toString() ?? e.message}`);
  }
}

/** Build case `name` (or reuse its build). */
export function buildCase(name: string): BuiltCase {
  const src = join(FIXTURES, "diff", name);
  const files = readdirSync(src).sort();
  const hash = createHash("sha256").update(JSON.stringify(CASE_CFLAGS));
  for (const f of files) hash.update(f).update(readFileSync(join(src, f)));
  const dir = join(BUILD_DIR, "diff", `${name}-${hash.digest("hex").slice(0, 12)}`);
  const shared = files.includes("lib.c");
  const sources = shared ? ["lib.c"] : ["prog.c"];
  const result: BuiltCase = {
    dir,
    pairs: sources.map((s) => ({
      orig: join(dir, "orig", s.replace(/\.c$/, ".o")),
      patched: join(dir, "patched", s.replace(/\.c$/, ".o")),
    })),
    exe: join(dir, "orig", "prog"),
    target: join(dir, "orig", shared ? "libdifffix.so" : "prog"),
  };
  if (existsSync(dir)) return result;
  const tmp = `${dir}.tmp${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  for (const side of ["orig", "patched"]) {
    const at = join(tmp, side);
    mkdirSync(at, { recursive: true });
    for (const f of files) if (f.endsWith(".c")) cpSync(join(src, f), join(at, f));
    if (side === "patched") run("patch", ["-p1", "-s", "-i", join(src, "fix.patch")], at);
    const pic = shared ? "-fPIC" : "-fPIE";
    for (const s of sources) run("gcc", ["-c", ...CASE_CFLAGS, pic, "-o", s.replace(/\.c$/, ".o"), s], at);
  }
  const orig = join(tmp, "orig");
  if (shared) {
    run("gcc", ["-shared", "-Wl,--build-id", "-o", "libdifffix.so", "lib.o"], orig);
    const rpath = `-Wl,-rpath,${join(dir, "orig")}`;
    run("gcc", ["-O2", "-pie", "-fPIE", "-o", "prog", "main.c", "-L.", "-ldifffix", rpath], orig);
  } else {
    run("gcc", ["-pie", "-Wl,--build-id", "-o", "prog", "prog.o"], orig);
  }
  mkdirSync(join(BUILD_DIR, "diff"), { recursive: true });
  try {
    renameSync(tmp, dir);
  } catch {
    // Another run built it first: its copy is the same.
    rmSync(tmp, { recursive: true, force: true });
  }
  return result;
}
