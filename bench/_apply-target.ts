/**
 * The target of the action benchmarks (bench/apply.bench.ts,
 * bench/pause.bench.ts): 100 old functions and their replacements in one
 * executable (`old_i`, `new_i`), so hand-made records redirect one to the
 * other without a loader, plus `argv[1] - 1` threads that sleep in a loop
 * (usleep 1 ms). Built as SPEC §12 asks, with CET, cached.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { FLAGS } from "../test/core/actions/_hand.ts";
import { BUILD_DIR, compileC } from "../test/helpers/cc.ts";

/** Old/new function pairs in the target. */
export const FUNCS = 100;

function targetSource(): string {
  const lines = ["#include <pthread.h>", "#include <stdio.h>", "#include <stdlib.h>", "#include <unistd.h>"];
  for (let i = 0; i < FUNCS; i++) {
    lines.push(
      `__attribute__((noinline, used)) long old_${i}(long x) { return x * ${i + 3} + ${i} + (x >> 2); }`,
    );
    lines.push(
      `__attribute__((noinline, used)) long new_${i}(long x) { return x * ${i + 3} + ${i} + (x >> 2) + 1; }`,
    );
  }
  lines.push(
    "static void *idle(void *a) { (void)a; for (;;) usleep(1000); return NULL; }",
    "int main(int argc, char **argv) {",
    "  int n = argc > 1 ? atoi(argv[1]) : 1;",
    "  for (int i = 1; i < n; i++) { pthread_t t; pthread_create(&t, NULL, idle, NULL); }",
    '  printf("ready pid=%d\\n", getpid()); fflush(stdout);',
    "  char c; while (read(0, &c, 1) > 0) {}",
    "  return 0;",
    "}",
  );
  return `${lines.join("\n")}\n`;
}

/** Build (or reuse) the target; returns its path. */
export function applyBenchTarget(): string {
  mkdirSync(BUILD_DIR, { recursive: true });
  const src = join(BUILD_DIR, "bench-apply-target.c");
  writeFileSync(src, targetSource());
  return compileC({
    sources: [src],
    kind: "exe",
    flags: [...FLAGS, "-fcf-protection=full", "-Wl,--build-id"],
    libs: ["-lpthread"],
    name: "bench-apply-target",
  });
}
