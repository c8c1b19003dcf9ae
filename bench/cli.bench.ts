/**
 * What a command costs to start (issue #13): CPU time (user + system, from
 * `getrusage(RUSAGE_CHILDREN)`) of `xsplice --help`, `xsplice inspect P` and
 * `xsplice get PID N` through bin/xsplice.js, each divided by the CPU time of
 * `node -e 0` measured in the same rounds (runs interleaved, so that load on
 * the machine falls on all of them alike). Goals: ≤ 1.5×, ≤ 2×, ≤ 3×.
 * `CLI_BENCH_RUNS` sets the runs per command (default 21).
 */
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { childrenCpuMs } from "../src/process/libc.ts";
import { actionPayload, actionsTarget } from "../test/core/actions/_hand.ts";
import { ROOT } from "../test/helpers/cc.ts";
import { startTarget } from "../test/helpers/target.ts";
import { type Bench, type BenchRow, stats } from "./lib.ts";

const BIN = join(ROOT, "bin", "xsplice.js");

/** CPU ms of one run of `node ARGS`; throws if it fails. */
function cpuOf(args: string[]): number {
  const before = childrenCpuMs();
  const r = spawnSync(process.execPath, args, { stdio: ["ignore", "ignore", "pipe"], encoding: "utf8" });
  const used = childrenCpuMs() - before;
  if (r.status !== 0) throw new Error(`node ${args.join(" ")} failed (${r.status}): ${r.stderr}`);
  return used;
}

const bench: Bench = async () => {
  const runs = Number(process.env["CLI_BENCH_RUNS"] ?? 21);
  const exe = actionsTarget(true);
  const payload = actionPayload("fix.c", exe);
  const target = await startTarget(exe, ["1"]);
  try {
    const pid = String(target.pid);
    // A loaded payload, so that `get` reads a real registry out of the target.
    cpuOf([BIN, "upload", pid, "fix", payload]);
    const cases: [string, string[]][] = [
      ["node -e 0", ["-e", "0"]],
      ["xsplice --help", [BIN, "--help"]],
      ["xsplice inspect P", [BIN, "inspect", payload]],
      ["xsplice get PID N", [BIN, "get", pid, "fix"]],
    ];
    const samples = new Map<string, number[]>(cases.map(([name]) => [name, []]));
    for (const [, args] of cases) cpuOf(args); // warm the page cache
    for (let i = 0; i < runs; i++) for (const [name, args] of cases) samples.get(name)!.push(cpuOf(args));
    cpuOf([BIN, "unload", pid, "fix"]);
    const baseline = { name: "node -e 0 (CPU)", stats: stats(samples.get("node -e 0")!) };
    const goals: Record<string, string> = {
      "xsplice --help": "goal <= 1.5x",
      "xsplice inspect P": "goal <= 2x",
      "xsplice get PID N": "goal <= 3x",
    };
    const rows: BenchRow[] = [{ name: baseline.name, stats: baseline.stats, note: "user+sys ms" }];
    for (const [name] of cases.slice(1)) {
      rows.push({
        name: `${name} (CPU)`,
        stats: stats(samples.get(name)!),
        baseline,
        note: goals[name] ?? "",
      });
    }
    return rows;
  } finally {
    await target.kill();
  }
};

export default bench;
