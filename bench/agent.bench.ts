/**
 * The agent's costs (issue #14): exec → patched `main` with the agent gating
 * and patching every start, against the same starts without it (the added
 * start-up latency, median and p99; goal ≤ 20 ms added), with where the added
 * time goes from the agent's own counters; and `load --all` over 100
 * processes with `-j` = cores, against one `xsplice load` of the same payload
 * (both as CLI runs; goal ≤ 25×).
 */
import { copyFileSync, mkdirSync } from "node:fs";
import { get } from "node:http";
import { availableParallelism } from "node:os";
import { join } from "node:path";
import { runOnce, startAgent } from "../test/agent/_agent.ts";
import { agentPayload, agentTarget, FIX_VALUE, startTargets } from "../test/agent/_fixture.ts";
import { tempDir, xsplice } from "../test/cli/_run.ts";
import type { Target } from "../test/helpers/target.ts";
import { type Bench, type BenchRow, sample, stats } from "./lib.ts";

const STARTS = 100;
const PROCESSES = 100;
/** Single `load`s timed for the baseline (each on its own process). */
const SINGLE = 5;

function percentile(samples: number[], q: number): number {
  const s = [...samples].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))] ?? Number.NaN;
}

/** The agent's counters that split a gated start, from `/metrics`. */
async function counters(addr: string): Promise<Record<string, number>> {
  const body = await new Promise<string>((resolve, reject) =>
    get(`http://${addr}/metrics`, (res) => {
      let b = "";
      res.setEncoding("utf8").on("data", (d: string) => {
        b += d;
      });
      res.on("end", () => resolve(b));
    }).on("error", reject),
  );
  const out: Record<string, number> = {};
  for (const m of body.matchAll(/^([a-z_]+) (\S+)$/gm)) out[m[1]!] = Number(m[2]);
  return out;
}

const bench: Bench = async () => {
  const exe = agentTarget();
  const fix = agentPayload("fix.c", exe);
  const tmp = tempDir("agent-bench");
  const rows: BenchRow[] = [];
  const targets: Target[] = [];
  try {
    const withoutSamples = await sample(() => runOnce(exe), STARTS, 3);
    const without = stats(withoutSamples);
    const dir = join(tmp.dir, "dir");
    mkdirSync(dir);
    copyFileSync(fix, join(dir, "fix.xsplice"));
    const agent = await startAgent(dir, tmp.dir, ["--metrics", "127.0.0.1:0"]);
    try {
      const first = await runOnce(exe);
      if (first !== `first=${FIX_VALUE} old_calls=0\n`) throw new Error(`not patched before main: ${first}`);
      for (let i = 0; i < 3; i++) await runOnce(exe);
      const c0 = await counters(agent.metrics!);
      const withSamples = await sample(
        async () => {
          const out = await runOnce(exe);
          if (out !== `first=${FIX_VALUE} old_calls=0\n`) throw new Error(`not patched before main: ${out}`);
        },
        STARTS,
        0,
      );
      const c1 = await counters(agent.metrics!);
      const withAgent = stats(withSamples);
      const d = (k: string) => (c1[k]! - c0[k]!) * 1000;
      const n = c1["xsplice_started_parked_total"]! - c0["xsplice_started_parked_total"]!;
      const applies = c1["xsplice_apply_seconds_count"]! - c0["xsplice_apply_seconds_count"]!;
      const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
      const addedMedian = withAgent.median - without.median;
      const addedP99 = percentile(withSamples, 0.99) - percentile(withoutSamples, 0.99);
      // The agent's counters are sums, so the split is of the mean added time.
      const addedMean = mean(withSamples) - mean(withoutSamples);
      const park = d("xsplice_start_park_seconds_total") / n;
      const hold = d("xsplice_start_hold_seconds_total") / n;
      const converge = d("xsplice_apply_seconds_sum") / applies;
      rows.push({
        name: "exec -> patched main, agent running",
        stats: withAgent,
        baseline: { name: "no agent", stats: without },
        note:
          `added: median ${addedMedian.toFixed(1)} ms, p99 ${addedP99.toFixed(1)} ms` +
          ` (p99 ${percentile(withSamples, 0.99).toFixed(1)} vs ${percentile(withoutSamples, 0.99).toFixed(1)});` +
          ` mean added ${addedMean.toFixed(1)} ms = exec event->parked ${park.toFixed(1)}` +
          ` + held ${hold.toFixed(1)} (worker converge ${converge.toFixed(1)}, agent and IPC ${(hold - converge).toFixed(1)})` +
          ` + rest (release, other execs' gate answers) ${(addedMean - park - hold).toFixed(1)};` +
          ` ${n} parked, ${applies} applies;` +
          ` ${c1["xsplice_scans_total"]! - c0["xsplice_scans_total"]!} scans meanwhile, each reading` +
          ` the host's processes for ${(d("xsplice_scan_seconds_total") / Math.max(1, c1["xsplice_scans_total"]! - c0["xsplice_scans_total"]!)).toFixed(1)} ms`,
      });
    } finally {
      await agent.stop();
    }

    // `XSPLICE_BENCH_AGENT=starts`: only the start-up latency (the part tuned most often).
    if (process.env.XSPLICE_BENCH_AGENT === "starts") return rows;
    await startTargets(exe, PROCESSES, targets);
    const singles: number[] = [];
    for (const t of targets.slice(0, SINGLE)) {
      const pid = String(t.pid);
      const t0 = performance.now();
      const single = await xsplice(["load", pid, fix, "--name", "one"]);
      singles.push(performance.now() - t0);
      if (single.status !== 0) throw new Error(single.stderr);
      await xsplice(["revert", pid, "one"]);
      await xsplice(["unload", pid, "one"]);
    }
    const jobs = String(availableParallelism());
    const all = stats(
      await sample(
        async () => {
          const r = await xsplice(["load", "--all", fix, "--name", "many", "-j", jobs]);
          if (r.status !== 0) throw new Error(r.stderr);
        },
        1,
        0,
      ),
    );
    rows.push({
      name: `load --all over ${PROCESSES} processes (-j ${jobs})`,
      stats: all,
      baseline: { name: `one xsplice load (median of ${SINGLE})`, stats: stats(singles) },
      note: "goal <= 25x",
    });
    return rows;
  } finally {
    await Promise.all(targets.map((t) => t.kill()));
    tmp.remove();
  }
};

export default bench;
