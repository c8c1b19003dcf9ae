/**
 * Builds the example programs with gcc the way a live-patchable target should
 * be built (README.md, "Building targets for live patching"), and their
 * payloads with the real `xsplice build` command line. Programs are cached
 * under `examples/.build/` (git-ignored), keyed by their sources and flags, so
 * a second run of the demo or the tests does not compile them again.
 */
import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { runXsplice } from "./xsplice.ts";

const execFileAsync = promisify(execFile);

/** The `examples/` directory. */
export const EXAMPLES_DIR: string = resolve(dirname(fileURLToPath(import.meta.url)), "..");
/** Where built examples go (git-ignored). */
export const EXAMPLES_BUILD_DIR: string = join(EXAMPLES_DIR, ".build");

/**
 * gcc flags of a target meant for live patching: position independent with a
 * build-id (the payload names its target by build-id, SPEC §1, §4), debug
 * info, frame pointers (stack walks for the SPEC §6 safety check), and
 * `-flive-patching=inline-clone` (SPEC §12: no interprocedural register
 * allocation or other cross-function assumptions a replacement could break).
 */
export const LIVE_PATCHABLE_CFLAGS: readonly string[] = [
  "-O2",
  "-g",
  "-fPIE",
  "-pie",
  "-Wl,--build-id",
  "-flive-patching=inline-clone",
  "-fno-omit-frame-pointer",
];

/** One example program. */
export interface ProgramSpec {
  /** Output base name, e.g. `server`. */
  name: string;
  /** C sources, relative to `examples/`. */
  sources: string[];
  /** Flags after {@link LIVE_PATCHABLE_CFLAGS}, e.g. `-pthread`. */
  extraFlags?: string[];
}

/** Every example program, by name. */
export const PROGRAMS = {
  server: { name: "server", sources: ["server/server.c"], extraFlags: ["-pthread"] },
  loadgen: { name: "loadgen", sources: ["server/loadgen.c"], extraFlags: ["-pthread"] },
  exploit: { name: "exploit", sources: ["server/exploit.c"] },
  worker: { name: "worker", sources: ["debug-trap/worker.c"] },
  greeter: { name: "greeter", sources: ["hooks/greeter.c"] },
} as const satisfies Record<string, ProgramSpec>;

/** Headers next to the sources count as inputs too (the server's `session.h`). */
function inputsOf(spec: ProgramSpec): string[] {
  const files = new Set<string>();
  for (const s of spec.sources) {
    const path = join(EXAMPLES_DIR, s);
    files.add(path);
    const dir = dirname(path);
    for (const f of readdirSync(dir).sort()) if (f.endsWith(".h")) files.add(join(dir, f));
  }
  return [...files];
}

/**
 * Compile one example program (or reuse the cached build); returns its path.
 * A compiler failure rejects with gcc's diagnostics.
 */
export async function buildProgram(spec: ProgramSpec): Promise<string> {
  const flags = [...LIVE_PATCHABLE_CFLAGS, ...(spec.extraFlags ?? [])];
  const hash = createHash("sha256").update(JSON.stringify(flags));
  for (const f of inputsOf(spec)) hash.update(f).update(readFileSync(f));
  const out = join(EXAMPLES_BUILD_DIR, `${spec.name}-${hash.digest("hex").slice(0, 12)}`);
  if (existsSync(out)) return out;
  mkdirSync(EXAMPLES_BUILD_DIR, { recursive: true });
  const tmp = `${out}.tmp${process.pid}`;
  const sources = spec.sources.map((s) => join(EXAMPLES_DIR, s));
  try {
    await execFileAsync("gcc", [...flags, "-o", tmp, ...sources]);
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`gcc failed for ${spec.name}:\n${e.stderr || e.message}`);
  }
  renameSync(tmp, out); // atomic: a concurrent run never sees half a file
  return out;
}

/** What `xsplice build --json` reports (docs/payload-format.md). */
export interface BuiltPayload {
  path: string;
  buildId: string;
  target: string;
  depends: string;
  funcs: {
    name: string;
    oldAddr: string;
    oldSize: number;
    newSize: number;
    nop: boolean;
    replacement?: string;
  }[];
  symbols: { name: string; addr: string }[];
  external: string[];
}

/**
 * Build a payload from `source` (relative to `examples/`) against `target`
 * with the real `xsplice build --json`, writing `out`.
 */
export async function buildExamplePayload(
  source: string,
  target: string,
  out: string,
): Promise<BuiltPayload> {
  const r = await runXsplice(["build", join(EXAMPLES_DIR, source), "--target", target, "-o", out, "--json"]);
  if (r.status !== 0) throw new Error(`xsplice build ${source} failed (exit ${r.status}): ${r.error}`);
  return r.json as BuiltPayload;
}
