/**
 * What the target sees of an action (issue #13): `pause.totalMs` — every stop
 * of one APPLY or REVERT from a fresh open to the detach, as `performAction`
 * (what `xsplice apply/revert` runs) reports it — against the bare floor of
 * stopping and resuming the same process, quiesce+resume of a held Tracee,
 * measured in the same run by the same ledger. Goal: <= 1.3x the floor at 8
 * and 64 threads (1 thread reported). Also `pause.stops` of an APPLY without
 * hooks, goal 1 (one stop per action): printed as a row of counts.
 * The target and records are bench/apply.bench.ts's (one function redirected).
 */
import { commitUploaded } from "../src/core/actions.ts";
import { type ActionResult, performAction } from "../src/core/execute.ts";
import { openTarget } from "../src/core/session.ts";
import { Tracee } from "../src/process/threads.ts";
import { handFunc, handRecord } from "../test/core/actions/_hand.ts";
import { startTarget } from "../test/helpers/target.ts";
import { applyBenchTarget } from "./_apply-target.ts";
import { type Bench, type BenchRow, stats } from "./lib.ts";

/** Floor samples (ms): quiesce+resume of a seized process, each taken from the Tracee's own ledger. */
function floorSamples(pid: number, n: number): number[] {
  const tr = Tracee.seize(pid);
  try {
    tr.resume();
    const out: number[] = [];
    for (let i = 0; i < n + 5; i++) {
      const before = tr.stops.totalMs;
      tr.quiesce();
      tr.resume();
      if (i >= 5) out.push(tr.stops.totalMs - before);
    }
    return out;
  } finally {
    tr.detach();
  }
}

function pauseNote(results: ActionResult[]): string {
  const stops = results.map((r) => r.pause?.stops ?? Number.NaN);
  const window = stats(results.map((r) => r.stopWindowMs)).median;
  return `stops ${Math.min(...stops)}-${Math.max(...stops)}, stopWindowMs median ${window.toFixed(3)}`;
}

const bench: Bench = async () => {
  const exe = applyBenchTarget();
  const rows: BenchRow[] = [];
  for (const threads of [1, 8, 64]) {
    const t = await startTarget(exe, [String(threads)]);
    try {
      const one = handRecord(exe, "one", [handFunc(t.pid, exe, "old_0", "new_0")]);
      const s = openTarget(t.pid, { recover: false });
      try {
        s.commit(commitUploaded(s.state, one));
      } finally {
        s.close();
      }
      const n = threads === 64 ? 30 : 60;
      // Floor and actions interleaved in blocks, so that a change of the machine's load hits both.
      const floor: number[] = [];
      const apply: ActionResult[] = [];
      const revert: ActionResult[] = [];
      for (let block = 0; block < 3; block++) {
        floor.push(...floorSamples(t.pid, n));
        for (let i = 0; i < n / 3 + 1; i++) {
          const a = performAction(t.pid, "one", "APPLY", { timeoutMs: 1000 });
          const r = performAction(t.pid, "one", "REVERT", { timeoutMs: 1000 });
          if (i === 0) continue; // each block's first: the target's threads were just stopped back to back
          apply.push(a);
          revert.push(r);
        }
      }
      const base = { name: `quiesce+resume floor, ${threads} thr`, stats: stats(floor) };
      const goal = threads === 1 ? "reported" : "goal <= 1.3x";
      rows.push({ name: base.name, stats: base.stats, note: "Tracee ledger, held process" });
      for (const [cmd, results] of [
        ["apply", apply],
        ["revert", revert],
      ] as const) {
        rows.push({
          name: `${cmd} pause.totalMs, ${threads} thr`,
          stats: stats(results.map((r) => r.pause?.totalMs ?? Number.NaN)),
          baseline: base,
          note: `${goal}; ${pauseNote(results)}`,
        });
      }
      rows.push({
        name: `apply pause.stops (a count), ${threads} thr`,
        stats: stats(apply.map((r) => r.pause?.stops ?? Number.NaN)),
        note: "no hooks: goal 1",
      });
    } finally {
      await t.kill();
    }
  }
  return rows;
};

export default bench;
