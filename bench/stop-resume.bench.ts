/**
 * The floor of stopping and resuming a process (SPEC §6, §12): for targets of
 * 1, 8 and 64 threads, (a) quiesce+resume of an already seized process and
 * (b) a full seize+quiesce+resume+detach. Baseline, same run: one
 * PTRACE_INTERRUPT + waitpid + PTRACE_CONT of a single seized thread.
 */
import {
  PTRACE_O,
  ptraceCont,
  ptraceDetach,
  ptraceInterrupt,
  ptraceSeize,
  waitTid,
} from "../src/process/libc.ts";
import { Tracee } from "../src/process/threads.ts";
import { compileC } from "../test/helpers/cc.ts";
import { startTarget } from "../test/helpers/target.ts";
import { type Bench, type BenchRow, sample, stats } from "./lib.ts";

const bench: Bench = async () => {
  const exe = compileC({ sources: ["process/nthreads.c"], kind: "exe", libs: ["-lpthread"] });
  const rows: BenchRow[] = [];

  // Baseline: the single-thread round trip that every per-thread stop costs at least.
  const one = await startTarget(exe, ["1"]);
  let baseline: BenchRow["stats"];
  try {
    ptraceSeize(one.pid, PTRACE_O.TRACECLONE);
    baseline = stats(
      await sample(
        () => {
          ptraceInterrupt(one.pid);
          while (waitTid(one.pid).kind !== "stopped");
          ptraceCont(one.pid, 0);
        },
        500,
        20,
      ),
    );
    ptraceInterrupt(one.pid);
    waitTid(one.pid);
    ptraceDetach(one.pid, 0);
  } finally {
    await one.kill();
  }
  const base = { name: "interrupt+wait+cont 1 thread", stats: baseline };
  rows.push({ name: base.name, stats: baseline });

  for (const n of [1, 8, 64]) {
    const t = await startTarget(exe, [String(n)]);
    try {
      const tr = Tracee.seize(t.pid);
      tr.resume();
      const cycles = await sample(
        () => {
          tr.quiesce();
          tr.resume();
        },
        n === 64 ? 200 : 500,
        10,
      );
      tr.detach();
      rows.push({ name: `quiesce+resume, ${n} thread(s)`, stats: stats(cycles), baseline: base });
      const full = await sample(() => Tracee.seize(t.pid).detach(), n === 64 ? 100 : 300, 5);
      rows.push({ name: `seize+stop+detach, ${n} thread(s)`, stats: stats(full), baseline: base });
    } finally {
      await t.kill();
    }
  }
  return rows;
};

export default bench;
