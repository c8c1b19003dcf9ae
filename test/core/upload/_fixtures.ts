/**
 * Targets and payloads for the upload tests: a PIE target built the way SPEC
 * §12 asks live-patchable programs to be built, linking a shared library of
 * its own; payloads built with `buildPayload` (cached under test/.build/);
 * calling a loaded payload's exported probes; the CLI as a subprocess.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { copyFileSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { buildPayload } from "../../../src/build/index.ts";
import type { PayloadRecord } from "../../../src/core/registry/records.ts";
import { openTarget } from "../../../src/core/session.ts";
import { remoteCall } from "../../../src/process/remote-call.ts";
import { BUILD_DIR, builderFingerprint, compileC, FIXTURES, tool } from "../../helpers/cc.ts";

/** gcc flags of a live-patchable target (SPEC §12). */
export const TARGET_FLAGS = [
  "-O2",
  "-g",
  "-fPIC",
  "-pie",
  "-Wl,--build-id",
  "-flive-patching=inline-clone",
  "-fno-omit-frame-pointer",
];

/** The shared library of the target. */
export const LIB = compileC({
  sources: ["upload/upload-lib.c"],
  kind: "shared",
  flags: TARGET_FLAGS.filter((f) => f !== "-pie"),
  name: "libupload-lib",
});

/** The target executable (linked against LIB by absolute path: no soname, so DT_NEEDED is the path). */
export const TARGET = compileC({
  sources: ["upload/upload-main.c", "upload/upload-util.c"],
  kind: "exe",
  flags: TARGET_FLAGS,
  libs: [LIB, "-lpthread"],
  name: "upload-target",
});

/** A stripped copy of TARGET: same build-id, no `.symtab`. */
export function strippedTarget(): string {
  const out = `${TARGET}.stripped`;
  if (!existsSync(out)) {
    const tmp = `${out}.tmp${process.pid}`;
    copyFileSync(TARGET, tmp);
    tool("strip", ["--strip-all", tmp]);
    renameSync(tmp, out);
  }
  return out;
}

/** A fixture under test/fixtures/upload/. */
export function source(name: string): string {
  return join(FIXTURES, "upload", name);
}

/**
 * Build a payload from `sources` against `target` (an object path), cached by
 * the sources, the target and the options; returns the payload's path.
 */
export function payload(
  sources: string[],
  target = TARGET,
  opts: { depends?: string; cflags?: string[] } = {},
): string {
  const h = createHash("sha256");
  h.update(JSON.stringify([target, opts]));
  h.update(readFileSync(target));
  for (const s of sources) h.update(readFileSync(s));
  h.update(readFileSync(join(FIXTURES, "../../include/xsplice.h")));
  h.update(builderFingerprint());
  const out = join(
    BUILD_DIR,
    "upload",
    `${basename(sources[0]!, ".c")}-${h.digest("hex").slice(0, 12)}.xsplice`,
  );
  if (existsSync(out)) return out;
  mkdirSync(dirname(out), { recursive: true });
  const tmp = `${out}.tmp${process.pid}`;
  buildPayload({ sources, target, out: tmp, ...opts });
  renameSync(tmp, out);
  return out;
}

/**
 * Payload `n` of a family of distinct payloads (own build-ids, own replacement
 * names) that all replace `second_fn`: for LIST paging, races and cycles.
 */
export function generated(n: number): string {
  const dir = join(BUILD_DIR, "upload", "gen");
  mkdirSync(dir, { recursive: true });
  const src = join(dir, `gen-${n}.c`);
  const text = `#include <xsplice.h>\nint repl_gen_${n}(int a) { return a + ${n}; }\nXSPLICE_REPLACE(second_fn, repl_gen_${n});\nXSPLICE_METADATA("n=${n}");\n`;
  if (!existsSync(src) || readFileSync(src, "utf8") !== text) writeFileSync(src, text);
  return payload([src]);
}

/**
 * Call exported function `fn` of the uploaded payload `rec` with `args` in the
 * target's main thread, in a short stop; returns its rax.
 */
export function callExport(pid: number, rec: PayloadRecord, fn: string, args: bigint[] = []): bigint {
  const addr = rec.exports[fn];
  assert.ok(addr, `${fn} is exported by ${rec.name}`);
  const s = openTarget(pid);
  try {
    s.stop();
    return remoteCall(s.tracee, s.tid, BigInt(addr), args, { timeoutMs: 2000 });
  } finally {
    s.close();
  }
}

/**
 * Run the xsplice CLI as a separate OS process: the examples' runner (exit
 * status, stdout, stderr; killed after 60 s), so the tests run the CLI exactly
 * as the examples and users do.
 */
export { runXsplice as cli } from "../../../examples/lib/xsplice.ts";
