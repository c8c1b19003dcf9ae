/**
 * UPLOAD end to end, as an operator meets it (issue #13): one fresh
 * `xsplice upload PID NAME FILE` command per sample, from process start to
 * exit, putting the 500-function payload (bench/_upload-fixture.ts) into a
 * running target. Baseline, same run, same target: one fresh command that
 * puts the same code in as a shared object with an injected `dlopen` call
 * (libpulp's way; bench/_dlopen-inject.ts, bundled into one JavaScript file).
 * Goal: <= 1.0x. `node -e 0` is printed for scale: both pay a Node start.
 * Each sample loads a copy of the .so under a new path (a path dlopen has
 * loaded before would only be counted up) and a new payload name; the
 * payloads are unloaded between samples, outside the timings. Beside the wall
 * time, each command's CPU time (getrusage of the children, as in
 * bench/cli.bench.ts): on a loaded host the wall time is mostly waiting for a
 * CPU, the CPU time is the work each way does.
 */
import { spawnSync } from "node:child_process";
import { copyFileSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { unloadPayload } from "../src/core/loader.ts";
import { openTarget } from "../src/core/session.ts";
import { childrenCpuMs } from "../src/process/libc.ts";
import { nodeCommand } from "../test/helpers/bundle.ts";
import { ROOT } from "../test/helpers/cc.ts";
import { startTarget } from "../test/helpers/target.ts";
import { FUNCS, uploadFixture } from "./_upload-fixture.ts";
import { type Bench, type BenchRow, stats } from "./lib.ts";

const ROUNDS = 7;

/** The `xsplice` command as the package declares it (package.json `bin`), whatever it points at. */
function xspliceBin(): string {
  const pkg = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { bin: Record<string, string> };
  return join(ROOT, pkg.bin["xsplice"]!);
}

/** Wall and CPU time (ms) of `node ARGS...` from spawn to exit; throws with its output when it fails. */
function timedNode(args: string[]): { wall: number; cpu: number } {
  const cpu0 = childrenCpuMs();
  const t0 = performance.now();
  const r = spawnSync(process.execPath, args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
  const wall = performance.now() - t0;
  const cpu = childrenCpuMs() - cpu0;
  if (r.status !== 0) throw new Error(`node ${args.join(" ")} failed (${r.status}): ${r.stdout}${r.stderr}`);
  return { wall, cpu };
}

const bench: Bench = async () => {
  const { target, so, payloadPath, relocs, bytes } = uploadFixture();
  const inject = await nodeCommand(fileURLToPath(new URL("./_dlopen-inject.ts", import.meta.url)));
  const bin = xspliceBin();
  const dir = mkdtempSync(join(tmpdir(), "xsplice-bench-so-"));
  const t = await startTarget(target);
  const node: { wall: number; cpu: number }[] = [];
  const up: { wall: number; cpu: number }[] = [];
  const dl: { wall: number; cpu: number }[] = [];
  try {
    for (let i = 0; i < ROUNDS + 1; i++) {
      const n = timedNode(["-e", "0"]);
      const name = `e2e-${i}`;
      const u = timedNode([bin, "upload", String(t.pid), name, payloadPath]);
      const s = openTarget(t.pid);
      try {
        unloadPayload(s, name);
      } finally {
        s.close();
      }
      const copy = join(dir, `patch-${i}.so`);
      copyFileSync(so, copy);
      const d = timedNode([...inject, String(t.pid), copy]);
      if (i === 0) continue; // warm-up: page cache, the registry's creation
      node.push(n);
      up.push(u);
      dl.push(d);
    }
  } finally {
    await t.kill();
    rmSync(dir, { recursive: true, force: true });
  }
  const wall = (xs: { wall: number }[]) => stats(xs.map((x) => x.wall));
  const cpu = (xs: { cpu: number }[]) => stats(xs.map((x) => x.cpu));
  const baseline = { name: "fresh command: injected dlopen of the .so", stats: wall(dl) };
  const cpuBaseline = { name: "CPU: injected dlopen", stats: cpu(dl) };
  const viaTsx = readFileSync(bin, "utf8").includes("tsx");
  const rows: BenchRow[] = [
    { name: "node -e 0", stats: wall(node) },
    {
      name: baseline.name,
      stats: baseline.stats,
      note: "bundled JS: seize, dlopen(RTLD_NOW) in the target, detach",
    },
    {
      name: "fresh command: xsplice upload",
      stats: wall(up),
      baseline,
      note: `${FUNCS} functions, ${relocs} relocations, ${bytes.length} bytes; goal <= 1.0x${viaTsx ? "; bin runs the TypeScript sources through tsx" : ""}`,
    },
    { name: "CPU: node -e 0", stats: cpu(node) },
    { name: cpuBaseline.name, stats: cpuBaseline.stats, note: "user + system of the command" },
    { name: "CPU: xsplice upload", stats: cpu(up), baseline: cpuBaseline },
  ];
  return rows;
};

export default bench;
