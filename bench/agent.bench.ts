/**
 * The agent's costs (issue #14): exec → patched `main` with the agent gating
 * and patching every start, against the same starts without it (the added
 * start-up latency); and `load --all` over N processes with `-j` = cores,
 * against one `xsplice load` of the same payload (both as CLI runs).
 */
import { copyFileSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { runOnce, startAgent } from "../test/agent/_agent.ts";
import { agentPayload, agentTarget, FIX_VALUE, startTargets } from "../test/agent/_fixture.ts";
import { tempDir, xsplice } from "../test/cli/_run.ts";
import type { Target } from "../test/helpers/target.ts";
import { type Bench, type BenchRow, sample, stats } from "./lib.ts";

const STARTS = 50;
const PROCESSES = 20;

const bench: Bench = async () => {
  const exe = agentTarget();
  const fix = agentPayload("fix.c", exe);
  const tmp = tempDir("agent-bench");
  const rows: BenchRow[] = [];
  const targets: Target[] = [];
  try {
    const without = stats(await sample(() => runOnce(exe), STARTS, 3));
    const dir = join(tmp.dir, "dir");
    mkdirSync(dir);
    copyFileSync(fix, join(dir, "fix.xsplice"));
    const agent = await startAgent(dir, tmp.dir);
    try {
      const first = await runOnce(exe);
      if (first !== `first=${FIX_VALUE} old_calls=0\n`) throw new Error(`not patched before main: ${first}`);
      const withAgent = stats(await sample(() => runOnce(exe), STARTS, 3));
      rows.push({
        name: "exec -> patched main, agent running",
        stats: withAgent,
        baseline: { name: "no agent", stats: without },
        note: `added: median ${(withAgent.median - without.median).toFixed(1)} ms, p95 ${(withAgent.p95 - without.p95).toFixed(1)} ms`,
      });
    } finally {
      await agent.stop();
    }

    await startTargets(exe, PROCESSES, targets);
    const pid = String(targets[0]!.pid);
    const t0 = performance.now();
    const single = await xsplice(["load", pid, fix, "--name", "one"]);
    const oneMs = performance.now() - t0;
    if (single.status !== 0) throw new Error(single.stderr);
    await xsplice(["revert", pid, "one"]);
    await xsplice(["unload", pid, "one"]);
    const one = stats([oneMs]);
    const all = stats(
      await sample(
        async () => {
          const r = await xsplice(["load", "--all", fix, "--name", "many"]);
          if (r.status !== 0) throw new Error(r.stderr);
        },
        1,
        0,
      ),
    );
    rows.push({
      name: `load --all over ${PROCESSES} processes (-j = cores)`,
      stats: all,
      baseline: { name: "one xsplice load", stats: one },
    });
    return rows;
  } finally {
    await Promise.all(targets.map((t) => t.kill()));
    tmp.remove();
  }
};

export default bench;
