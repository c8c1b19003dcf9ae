/**
 * Builds C fixtures with the machine's gcc for tests and benchmarks. Outputs go
 * to `test/.build/` (git-ignored), keyed by a hash of sources, flags and
 * compiler, so a re-run reuses what an earlier run built and a change rebuilds.
 */
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync } from "node:fs";
import { basename, dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

/** Repository root. */
export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
/** Where built fixtures live. */
export const BUILD_DIR = join(ROOT, "test/.build");
/** The C fixtures directory. */
export const FIXTURES = join(ROOT, "test/fixtures");
/** The include directory shipped with the package (`xsplice.h`). */
export const INCLUDE = join(ROOT, "include");

export interface CompileOptions {
  /** C source files (absolute, or relative to test/fixtures). */
  sources: string[];
  /** What to produce: an executable, a shared object, or a relocatable object (`-c`, one source). */
  kind: "exe" | "shared" | "obj";
  /** Extra gcc flags. Defaults to `-O2 -g`. */
  flags?: string[];
  /** Extra link flags (after the sources), e.g. `-lpthread`. */
  libs?: string[];
  /** Base name of the output; defaults to the first source's base name. */
  name?: string;
}

function run(cmd: string, args: string[]): string {
  try {
    return execFileSync(cmd, args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`${cmd} ${args.join(" ")} failed:\n${e.stderr ?? e.message}`);
  }
}

/** Compile C sources with gcc; returns the path of the output, rebuilt only when an input changed. */
export function compileC(opts: CompileOptions): string {
  const sources = opts.sources.map((s) => (s.startsWith("/") ? s : join(FIXTURES, s)));
  const flags = opts.flags ?? ["-O2", "-g"];
  const libs = opts.libs ?? [];
  const hash = createHash("sha256");
  hash.update(JSON.stringify([opts.kind, flags, libs]));
  for (const s of sources) hash.update(readFileSync(s));
  const name = opts.name ?? basename(sources[0] ?? "out", ".c");
  const ext = opts.kind === "shared" ? ".so" : opts.kind === "obj" ? ".o" : "";
  const out = join(BUILD_DIR, `${name}-${hash.digest("hex").slice(0, 12)}${ext}`);
  if (existsSync(out)) return out;
  mkdirSync(BUILD_DIR, { recursive: true });
  const tmp = `${out}.tmp${process.pid}`;
  const kindFlags = opts.kind === "shared" ? ["-shared", "-fPIC"] : opts.kind === "obj" ? ["-c"] : [];
  run("gcc", [...kindFlags, ...flags, `-I${INCLUDE}`, "-o", tmp, ...sources, ...libs]);
  renameSync(tmp, out); // atomic, so a concurrent run never sees half a file
  return out;
}

/** Run a binutils (or any) tool and return its stdout; throws with its stderr on failure. */
export function tool(cmd: string, args: string[]): string {
  return run(cmd, args);
}

let builderDigest: string | undefined;

/**
 * A digest of the sources that decide a built payload's bytes (the builders,
 * the payload format, the ELF writer and reader): part of every cache key of
 * a payload built for a test, so that a change to xsplice is never met by a
 * payload the previous version built.
 */
export function builderFingerprint(): string {
  if (builderDigest !== undefined) return builderDigest;
  const h = createHash("sha256");
  for (const dir of ["build", "payload", "elf"]) {
    const root = join(ROOT, "src", dir);
    for (const f of readdirSync(root, { recursive: true, encoding: "utf8" }).sort()) {
      if (f.endsWith(".ts") && !f.endsWith(".test.ts")) h.update(f).update(readFileSync(join(root, f)));
    }
  }
  builderDigest = h.digest("hex");
  return builderDigest;
}
