/**
 * The stop window of APPLY and REVERT (SPEC §6, §12): how long the target's
 * threads are stopped, for 1 and 100 patched functions at 1, 8 and 64
 * threads, against the stop-and-resume floor of the same process measured in
 * the same run (quiesce+resume of a held session). Goal: within 1.2× of the
 * floor. The target is generated: 100 old functions and their replacements
 * in one executable, so hand-made records redirect one to the other without
 * a loader; its threads sleep in a loop (usleep 1 ms). Each action row notes
 * the median of each stage of the window (stop, check, writes, resume), so
 * the distance to the floor can be attributed, and how much the check and the
 * writes add to the action's own stop and resume.
 */
import { commitUploaded } from "../src/core/actions.ts";
import { type ActionResult, runAction } from "../src/core/execute.ts";
import { openTarget } from "../src/core/session.ts";
import { handFunc, handRecord } from "../test/core/actions/_hand.ts";
import { startTarget } from "../test/helpers/target.ts";
import { applyBenchTarget, FUNCS } from "./_apply-target.ts";
import { type Bench, type BenchRow, stats } from "./lib.ts";

/**
 * Median of each stage of the stop window over `results`, and what the check
 * and the writes add to the action's own stop+resume: the back-to-back floor
 * stops threads that have barely gone back to sleep, and is usually cheaper
 * than the stop of an action, which finds them settled.
 */
function stageNote(results: ActionResult[]): string {
  const med = (f: (r: ActionResult) => number) => stats(results.map(f)).median;
  const stage = (k: "stop" | "check" | "act" | "resume") => (r: ActionResult) =>
    r.stopStages?.[k] ?? Number.NaN;
  const own = med((r) => stage("stop")(r) + stage("resume")(r));
  const inside = med((r) => stage("check")(r) + stage("act")(r));
  return [
    `stop ${med(stage("stop")).toFixed(3)}`,
    `check ${med(stage("check")).toFixed(3)}`,
    `writes ${med(stage("act")).toFixed(3)}`,
    `resume ${med(stage("resume")).toFixed(3)}`,
    `check+writes = ${((100 * inside) / own).toFixed(0)}% of own stop+resume`,
  ].join(" ");
}

const bench: Bench = async () => {
  const exe = applyBenchTarget();
  const rows: BenchRow[] = [];
  for (const threads of [1, 8, 64]) {
    const t = await startTarget(exe, [String(threads)]);
    try {
      const one = handRecord(exe, "one", [handFunc(t.pid, exe, "old_0", "new_0")]);
      const many = handRecord(
        exe,
        "many",
        Array.from({ length: FUNCS }, (_, i) => handFunc(t.pid, exe, `old_${i}`, `new_${i}`)),
      );
      const session = openTarget(t.pid, { recover: false });
      try {
        session.commit(commitUploaded(commitUploaded(session.state, one), many));
        session.run();
        const n = threads === 64 ? 40 : 100;
        const floor: number[] = [];
        for (let i = 0; i < n + 5; i++) {
          const t0 = performance.now();
          session.stop();
          session.run();
          if (i >= 5) floor.push(performance.now() - t0);
        }
        const base = { name: `quiesce+resume, ${threads} thr`, stats: stats(floor) };
        rows.push({ name: base.name, stats: base.stats });
        for (const [label, name] of [
          ["1 func", "one"],
          [`${FUNCS} funcs`, "many"],
        ] as const) {
          const apply: ActionResult[] = [];
          const revert: ActionResult[] = [];
          for (let i = 0; i < n + 2; i++) {
            const a = runAction(session, name, "APPLY", { timeoutMs: 1000 });
            const r = runAction(session, name, "REVERT", { timeoutMs: 1000 });
            if (i >= 2) {
              apply.push(a);
              revert.push(r);
            }
          }
          rows.push({
            name: `apply stop window, ${label}, ${threads} thr`,
            stats: stats(apply.map((r) => r.stopWindowMs)),
            baseline: base,
            note: stageNote(apply),
          });
          rows.push({
            name: `revert stop window, ${label}, ${threads} thr`,
            stats: stats(revert.map((r) => r.stopWindowMs)),
            baseline: base,
            note: stageNote(revert),
          });
        }
      } finally {
        session.close();
      }
    } finally {
      await t.kill();
    }
  }
  return rows;
};

export default bench;
