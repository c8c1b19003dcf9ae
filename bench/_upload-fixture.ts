/**
 * The 500-function payload of the upload benchmarks (bench/upload.bench.ts,
 * bench/upload-e2e.bench.ts): a target holding 500 old functions and 50
 * globals, the 500 replacements (40 global references each, about 20,000
 * relocations) as an xsplice payload, and the same code as a shared object
 * for the dlopen baselines. Built once, cached under test/.build/bench-upload.
 */
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { buildPayload } from "../src/build/index.ts";
// The upload tests' target flags (SPEC §12): the bench target is built the same way. Importing
// _fixtures also builds (once, cached) the upload tests' own target; that is outside the timings.
import { TARGET_FLAGS } from "../test/core/upload/_fixtures.ts";
import { BUILD_DIR, compileC } from "../test/helpers/cc.ts";

export const FUNCS = 500;
const GLOBALS = 50;
/** Global references per function: each is one GOTPCRELX relocation under -fPIC. */
const REFS = 40;

function targetSource(): string {
  const out = [
    "#include <dlfcn.h>",
    "#include <stdio.h>",
    "#include <string.h>",
    "#include <time.h>",
    "#include <unistd.h>",
  ];
  for (let g = 0; g < GLOBALS; g++) out.push(`int g_${g} = ${g};`);
  for (let f = 0; f < FUNCS; f++)
    out.push(`__attribute__((noinline)) int old_${f}(int x) { return x * ${f + 3} + g_${f % GLOBALS}; }`);
  out.push(`
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec * 1e3 + t.tv_nsec / 1e6; }
int main(void) {
  printf("ready pid=%d\\n", getpid()); fflush(stdout);
  char line[4096], path[4000];
  while (fgets(line, sizeof line, stdin)) {
    if (sscanf(line, "dlopen %3999s", path) == 1) {
      double t0 = now();
      void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
      double t1 = now();
      printf("dlopen %s %.4f\\n", h ? "ok" : dlerror(), t1 - t0); fflush(stdout);
      if (h) dlclose(h);
    } else {
      int s = 0;
      for (int i = 0; i < ${FUNCS}; i++) s += i;
      printf("sum %d\\n", s); fflush(stdout);
    }
  }
  return 0;
}`);
  return out.join("\n");
}

function patchSource(): string {
  const out = ["#include <string.h>", "#ifdef XSPLICE", "#include <xsplice.h>", "#endif"];
  for (let g = 0; g < GLOBALS; g++) out.push(`extern int g_${g};`);
  for (let f = 0; f < FUNCS; f++) {
    const terms: string[] = [];
    for (let r = 0; r < REFS; r++) terms.push(`g_${(f * 7 + r * 13) % GLOBALS} * ${r + 1}`);
    out.push(
      `int new_${f}(int x) { volatile int s = x * ${f + 1}; s += ${terms.join(";\n  s += ")}; return s; }`,
    );
  }
  out.push("#ifdef XSPLICE");
  for (let f = 0; f < FUNCS; f++) out.push(`XSPLICE_REPLACE(old_${f}, new_${f});`);
  out.push("#endif");
  return out.join("\n");
}

function cached(name: string, text: string): string {
  const dir = join(BUILD_DIR, "bench-upload");
  mkdirSync(dir, { recursive: true });
  const path = join(dir, name);
  if (!existsSync(path) || readFileSync(path, "utf8") !== text) writeFileSync(path, text);
  return path;
}

function relocationCount(file: string): number {
  const out = execFileSync("readelf", ["-rW", file], { encoding: "utf8", maxBuffer: 64 << 20 });
  return out.split("\n").filter((l) => /^[0-9a-f]{16}\s/.test(l)).length;
}

/** The built fixture. */
export interface UploadFixture {
  /** The target executable (reads `dlopen PATH` lines on stdin, see `targetSource`). */
  target: string;
  /** The replacements as a shared object. */
  so: string;
  /** The replacements as an xsplice payload, and its bytes. */
  payloadPath: string;
  bytes: Uint8Array;
  /** Relocations in the payload, as readelf counts them. */
  relocs: number;
}

/** Build (or reuse) the fixture. */
export function uploadFixture(): UploadFixture {
  const tsrc = cached("target.c", targetSource());
  const psrc = cached("patch.c", patchSource());
  const target = compileC({
    sources: [tsrc],
    kind: "exe",
    flags: [...TARGET_FLAGS, "-rdynamic"],
    libs: ["-ldl"],
    name: "bench-upload-target",
  });
  const so = compileC({
    sources: [psrc],
    kind: "shared",
    flags: ["-O2", "-fPIC"],
    name: "bench-upload-patch",
  });
  const h = createHash("sha256")
    .update(readFileSync(target))
    .update(readFileSync(psrc))
    .digest("hex")
    .slice(0, 12);
  const payloadPath = join(BUILD_DIR, "bench-upload", `patch-${h}.xsplice`);
  if (!existsSync(payloadPath)) {
    buildPayload({ sources: [psrc], target, out: `${payloadPath}.tmp`, cflags: ["-DXSPLICE"] });
    renameSync(`${payloadPath}.tmp`, payloadPath);
  }
  const bytes = readFileSync(payloadPath);
  const relocs = relocationCount(payloadPath);

  return { target, so, payloadPath, bytes: new Uint8Array(bytes), relocs };
}
