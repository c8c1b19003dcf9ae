/**
 * The pause an action costs the target on a saturated host (issue #13 items
 * 3–4): a target whose 6 threads compute flat out, with and without 4 busy
 * loops per core competing for the CPU, an apply+revert of one function per
 * sample, the target's pause (`pause.totalMs`, every stop from seize to
 * detach) as the figure. Rows compare the ways xsplice can raise its own
 * thread while the target is stopped (`src/process/priority.ts`): none, nice
 * −20, SCHED_FIFO 1 — each against no boost on the same loaded host in the
 * same run, and the quiet host beside it.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { availableParallelism } from "node:os";
import { join } from "node:path";
import { commitUploaded } from "../src/core/actions.ts";
import { runAction } from "../src/core/execute.ts";
import { openTarget } from "../src/core/session.ts";
import type { StopBoost } from "../src/process/priority.ts";
import { FLAGS, handFunc, handRecord } from "../test/core/actions/_hand.ts";
import { BUILD_DIR, compileC } from "../test/helpers/cc.ts";
import { startTarget, type Target } from "../test/helpers/target.ts";
import { type Bench, type BenchRow, type Stats, stats } from "./lib.ts";

const SAMPLES = 60;
const THREADS = 6;

function targetSource(): string {
  return `#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
__attribute__((noinline, used)) long old_0(long x) { return x * 3 + (x >> 2); }
__attribute__((noinline, used)) long new_0(long x) { return x * 3 + (x >> 2) + 1; }
static void *busy(void *a) { (void)a; volatile unsigned long n = 0; for (;;) n++; return NULL; }
int main(int argc, char **argv) {
  int n = argc > 1 ? atoi(argv[1]) : 1;
  for (int i = 0; i < n; i++) { pthread_t t; pthread_create(&t, NULL, busy, NULL); }
  printf("ready pid=%d\\n", getpid()); fflush(stdout);
  char c; while (read(0, &c, 1) > 0) {}
  return 0;
}
`;
}

function startHogs(n: number): ChildProcess[] {
  return Array.from({ length: n }, () =>
    spawn("/bin/sh", ["-c", "while :; do :; done"], { stdio: "ignore" }),
  );
}

/** Apply then revert, `SAMPLES` times; the pause of each action. */
function pauses(t: Target, boost: StopBoost): Stats {
  const out: number[] = [];
  for (let i = 0; i < SAMPLES; i++) {
    for (const cmd of ["APPLY", "REVERT"] as const) {
      const s = openTarget(t.pid, { boost });
      try {
        runAction(s, "one", cmd, { timeoutMs: 200 });
      } finally {
        s.close();
      }
      out.push(s.tracee.stops.totalMs);
    }
  }
  return stats(out);
}

const bench: Bench = async () => {
  mkdirSync(BUILD_DIR, { recursive: true });
  const src = join(BUILD_DIR, "bench-load-target.c");
  writeFileSync(src, targetSource());
  const exe = compileC({
    sources: [src],
    kind: "exe",
    flags: [...FLAGS, "-Wl,--build-id"],
    libs: ["-lpthread"],
    name: "bench-load-target",
  });
  const t = await startTarget(exe, [String(THREADS)]);
  const rows: BenchRow[] = [];
  let hogs: ChildProcess[] = [];
  try {
    const s = openTarget(t.pid);
    try {
      s.commit(commitUploaded(s.state, handRecord(exe, "one", [handFunc(t.pid, exe, "old_0", "new_0")])));
    } finally {
      s.close();
    }
    const quiet = pauses(t, "none");
    const quietFifo = pauses(t, "fifo");
    const nHogs = availableParallelism() * 4;
    hogs = startHogs(nHogs);
    await new Promise((r) => setTimeout(r, 500)); // let the hogs settle into the run queue
    const loaded: Record<StopBoost, Stats> = {
      none: pauses(t, "none"),
      nice: pauses(t, "nice"),
      fifo: pauses(t, "fifo"),
    };
    const base = { name: "loaded, no boost", stats: loaded.none };
    rows.push({
      name: "quiet host, no boost: pause per action",
      stats: quiet,
      note: `${THREADS} busy threads`,
    });
    rows.push({
      name: "quiet host, SCHED_FIFO: pause per action",
      stats: quietFifo,
      baseline: { name: "quiet, no boost", stats: quiet },
    });
    rows.push({ name: "loaded host, no boost", stats: loaded.none, note: `${nHogs} busy loops` });
    rows.push({ name: "loaded host, nice -20", stats: loaded.nice, baseline: base });
    rows.push({ name: "loaded host, SCHED_FIFO 1", stats: loaded.fifo, baseline: base });
  } finally {
    for (const h of hogs) h.kill("SIGKILL");
    await t.kill();
  }
  return rows;
};

export default bench;
