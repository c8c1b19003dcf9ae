/**
 * A real published security fix, made into a payload from its source patch
 * and applied live (issue #12; README.md beside this file):
 *
 *   1. fetch Debian's zlib 1.2.13 source, reverse-apply the upstream fix of
 *      CVE-2022-37434 (fix.patch) and build the vulnerable libz.so and the
 *      workload that uses it;
 *   2. start the workload: threads inflating valid gzip streams through
 *      inflateGetHeader(), every result checked;
 *   3. show the overflow: the crafted stream, inflated in a child of the
 *      workload, writes past the application's 16-byte header buffer;
 *   4. `xsplice make` the payload from the vulnerable tree and fix.patch, and
 *      `xsplice load` it into the running workload;
 *   5. show the overflow gone and 0 failed workload results;
 *   6. revert and unload, show the overflow back, 0 failed results overall.
 *
 *   npx tsx examples/zlib-cve/run.ts [--json]
 *
 * Every claim is checked; the exit status is 0 only if every step behaved as
 * claimed. `--json` prints one JSON document (and nothing else) on stdout.
 * Every process it starts is stopped at the end, also on failure and Ctrl-C.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Program, startProgram } from "../lib/program.ts";
import { Steps, type StepsOutcome, shown } from "../lib/steps.ts";
import { missingCommands, runXsplice, type XspliceRun } from "../lib/xsplice.ts";
import { buildVulnerableZlib, FIX_PATCH, ZLIB_BUILD_COMMAND, ZLIB_CFLAGS, type ZlibBuild } from "./zlib.ts";

/** The workload's counters (`counts ok=N failed=M`). */
interface Counts {
  ok: number;
  failed: number;
}

/** What one `exploit` command reported. */
interface Exploit {
  line: string;
  /** The write past the 16-byte buffer was caught (or the child died of it). */
  overflow: boolean;
  /** The child inflated the stream to its end, output and kept bytes right. */
  safe: boolean;
}

const CLAIMS = [
  "zlib 1.2.13 fetched, fix reverse-applied, vulnerable libz.so and workload built",
  "workload running, results checked, none failed",
  "the unpatched inflate() writes past the header buffer",
  "xsplice make built the payload from fix.patch (inflate changed); loaded live: APPLIED",
  "no overflow, the crafted stream inflates correctly, 0 failed results",
  "reverted and unloaded: the overflow is back, 0 failed results overall",
] as const;
const TITLES = ["build", "start", "overflow", "make + load", "patched", "revert"] as const;
const json = process.argv.includes("--json");
const steps = new Steps(CLAIMS, TITLES, json, "example");
const { say, heading, record, showCommand } = steps;
const PAYLOAD_NAME = "cve-2022-37434";
const THREADS = 3;
/** How long the workload runs on the patched library before it is looked at (ms). */
const PATCHED_RUN_MS = 1000;
/** Two builds of zlib on a busy 2-core machine, plus the diff. */
const MAKE_TIMEOUT_MS = 600_000;

const running: Program[] = [];
let workDir: string | undefined;
const facts: {
  pid?: number;
  library?: string;
  before?: Exploit;
  patched?: Exploit;
  reverted?: Exploit;
  counts?: Counts;
  make?: unknown;
  makeMs?: number;
  stopWindowMs?: number;
  pauseMs?: number;
  revertStopWindowMs?: number;
} = {};

/** Send `line` and resolve with the first later line matching `answer`. */
function ask(p: Program, line: string, answer: RegExp, timeoutMs = 10_000): Promise<string> {
  const from = p.lines.length;
  p.send(line);
  return p.waitFor(answer, { from, timeoutMs });
}

async function counts(p: Program): Promise<Counts> {
  const line = await ask(p, "counts", /^counts /);
  const m = /ok=(\d+) failed=(\d+)/.exec(line);
  return { ok: Number(m?.[1] ?? -1), failed: Number(m?.[2] ?? -1) };
}

async function exploit(p: Program): Promise<Exploit> {
  const line = await ask(p, "exploit", /^exploit /);
  return {
    line,
    overflow: /^exploit (overflow|crashed)/.test(line),
    safe: /^exploit safe rc=Z_STREAM_END extra_len=200 kept=16 data=ok$/.test(line),
  };
}

function stateOf(r: XspliceRun): string | undefined {
  return (r.json as { state?: string } | undefined)?.state;
}

function numberOf(r: XspliceRun, key: string): number | undefined {
  const v = (r.json as Record<string, unknown> | undefined)?.[key];
  return typeof v === "number" ? v : undefined;
}

async function stopAll(): Promise<void> {
  await Promise.all(running.map((p) => p.stop("SIGKILL", 1000)));
  if (workDir) rmSync(workDir, { recursive: true, force: true });
  workDir = undefined;
}

async function run(): Promise<void> {
  heading(1, "Build the vulnerable zlib and a workload that uses it");
  let build: ZlibBuild;
  try {
    build = await buildVulnerableZlib((l) => say(`      ${l}`));
  } catch (err) {
    record({ step: 1, ok: false, observed: (err as Error).message });
    return;
  }
  facts.library = build.library;
  say(`      library  ${shown(build.library)}`);
  say(`      workload ${shown(build.workload)}`);
  record({
    step: 1,
    ok: true,
    observed: "built",
    data: { library: build.library, workload: build.workload },
  });

  heading(2, `Start the workload: ${THREADS} threads inflating checked gzip streams`);
  const { program: workload, readyLine } = await startProgram(build.workload, [String(THREADS)]);
  running.push(workload);
  facts.pid = workload.pid;
  say(`      ${readyLine}`);
  let warm = await counts(workload);
  for (const deadline = performance.now() + 5000; warm.ok === 0 && performance.now() < deadline; ) {
    await new Promise((r) => setTimeout(r, 50));
    warm = await counts(workload);
  }
  say(`      ${warm.ok} streams inflated and checked, ${warm.failed} failed`);
  if (
    !record({
      step: 2,
      ok: warm.ok > 0 && warm.failed === 0,
      observed: `${warm.ok} ok, ${warm.failed} failed`,
      data: { pid: workload.pid, readyLine, ...warm },
    })
  )
    return;

  heading(3, "CVE-2022-37434: a 200-byte gzip extra field, a 16-byte buffer, input in 64-byte pieces");
  facts.before = await exploit(workload);
  say(`      ${facts.before.line}`);
  if (!record({ step: 3, ok: facts.before.overflow, observed: facts.before.line, data: { ...facts.before } }))
    return;

  heading(4, "Make the payload from the upstream fix and load it into the running workload");
  const missing = await missingCommands(["make", "load", "revert", "unload", "get"]);
  if (missing.length > 0) {
    record({
      step: 4,
      ok: false,
      observed: `this checkout's xsplice has no ${missing.join("/")} command (issue #12)`,
      data: { missing },
    });
    return;
  }
  workDir = mkdtempSync(join(tmpdir(), "xsplice-zlib-cve-"));
  const payload = join(workDir, `${PAYLOAD_NAME}.xsplice`);
  say(`      target built with: ${ZLIB_CFLAGS.join(" ")}`);
  const make = await runXsplice(
    [
      "make",
      "--src",
      build.src,
      "--patch",
      FIX_PATCH,
      "--target",
      build.library,
      "-o",
      payload,
      "--json",
      "--",
      "sh",
      "-c",
      ZLIB_BUILD_COMMAND,
    ],
    { timeoutMs: MAKE_TIMEOUT_MS },
  );
  showCommand(make.args);
  facts.make = make.json;
  facts.makeMs = make.elapsedMs;
  const made = make.json as
    | {
        funcs?: { name: string; status: string; reason?: string }[];
        refused?: { name: string; reason: string }[];
      }
    | undefined;
  const funcs = made?.funcs ?? [];
  for (const f of funcs) say(`        ${f.name}: ${f.status}${f.reason ? ` (${f.reason})` : ""}`);
  const inflateChanged = funcs.some((f) => f.name === "inflate" && f.status === "changed");
  if (make.status !== 0 || !inflateChanged || (made?.refused ?? []).length > 0) {
    record({
      step: 4,
      ok: false,
      observed:
        make.status !== 0
          ? `xsplice make exit ${make.status}: ${make.error}`
          : `payload funcs ${JSON.stringify(funcs)}, refused ${JSON.stringify(made?.refused)}`,
      data: { exit: make.status, make: make.json },
    });
    return;
  }
  say(`      made in ${(make.elapsedMs / 1000).toFixed(1)} s (two builds of zlib and the diff)`);
  const load = await runXsplice(["load", String(workload.pid), payload, "--name", PAYLOAD_NAME, "--json"]);
  showCommand(load.args);
  facts.stopWindowMs = numberOf(load, "stopWindowMs");
  facts.pauseMs = (load.json as { pause?: { totalMs?: number } } | undefined)?.pause?.totalMs;
  for (const w of (load.json as { warnings?: unknown[] } | undefined)?.warnings ?? [])
    say(`      warning: ${String(w)}`);
  const get =
    load.status === 0 ? await runXsplice(["get", String(workload.pid), PAYLOAD_NAME, "--json"]) : undefined;
  const state = get ? stateOf(get) : undefined;
  say(
    load.status === 0
      ? `      state ${state}; the workload was stopped ${facts.stopWindowMs?.toFixed(3)} ms for the writes, ${facts.pauseMs?.toFixed(3)} ms in all`
      : `      xsplice load failed: ${load.error}`,
  );
  if (
    !record({
      step: 4,
      ok: load.status === 0 && state === "APPLIED",
      observed: load.status !== 0 ? `load exit ${load.status}: ${load.error}` : `state ${state}`,
      data: { funcs, makeMs: Math.round(make.elapsedMs), load: load.json },
    })
  )
    return;

  heading(5, "The patched workload");
  facts.patched = await exploit(workload);
  say(`      ${facts.patched.line}`);
  const atPatch = await counts(workload);
  await new Promise((r) => setTimeout(r, PATCHED_RUN_MS));
  const afterPatch = await counts(workload);
  const since = afterPatch.ok - atPatch.ok;
  say(
    `      ${since} more streams inflated by the patched inflate() in ${PATCHED_RUN_MS} ms; ${afterPatch.failed} failed in all`,
  );
  if (
    !record({
      step: 5,
      ok: facts.patched.safe && !facts.patched.overflow && afterPatch.failed === 0 && since > 0,
      observed: `${facts.patched.line}; ${since} more, ${afterPatch.failed} failed`,
      data: { ...facts.patched, ...afterPatch, sincePatch: since },
    })
  )
    return;

  heading(6, "Revert the fix and unload it");
  const revert = await runXsplice(["revert", String(workload.pid), PAYLOAD_NAME, "--json"]);
  showCommand(revert.args);
  facts.revertStopWindowMs = numberOf(revert, "stopWindowMs");
  const unload =
    revert.status === 0
      ? await runXsplice(["unload", String(workload.pid), PAYLOAD_NAME, "--json"])
      : undefined;
  if (unload) showCommand(unload.args);
  facts.reverted = await exploit(workload);
  say(`      ${facts.reverted.line}`);
  facts.counts = await counts(workload);
  say(`      workload: ${facts.counts.ok} streams inflated and checked, ${facts.counts.failed} failed`);
  await workload.stop("SIGTERM");
  record({
    step: 6,
    ok: revert.status === 0 && unload?.status === 0 && facts.reverted.overflow && facts.counts.failed === 0,
    observed:
      revert.status !== 0
        ? `revert exit ${revert.status}: ${revert.error}`
        : unload?.status !== 0
          ? `unload exit ${unload?.status}: ${unload?.error}`
          : `${facts.reverted.line}; ${facts.counts.failed} failed of ${facts.counts.ok + facts.counts.failed}`,
    data: { revertExit: revert.status, unloadExit: unload?.status, ...facts.reverted, ...facts.counts },
  });
}

function report({ ok, elapsedMs, error }: StepsOutcome): void {
  if (json) {
    const summary = {
      cve: "CVE-2022-37434",
      pid: facts.pid,
      library: facts.library,
      overflowBefore: facts.before?.overflow,
      overflowPatched: facts.patched?.overflow,
      safePatched: facts.patched?.safe,
      overflowReverted: facts.reverted?.overflow,
      results: facts.counts,
      makeMs: facts.makeMs === undefined ? undefined : Math.round(facts.makeMs),
      stopWindowMs: facts.stopWindowMs,
      pauseMs: facts.pauseMs,
      revertStopWindowMs: facts.revertStopWindowMs,
      make: facts.make,
    };
    process.stdout.write(
      `${JSON.stringify({ ok, elapsedMs, steps: steps.results, summary, ...(error ? { error } : {}) }, null, 2)}\n`,
    );
  } else {
    say();
    say("Summary");
    const width = Math.max(...steps.results.map((r) => r.claim.length));
    for (const r of steps.results)
      say(
        `  ${String(r.step).padEnd(2)} ${r.claim.padEnd(width)}  ${r.skipped ? "skipped" : r.ok ? "ok" : "FAILED"}`,
      );
    if (facts.counts) say(`  workload: ${facts.counts.ok} results checked, ${facts.counts.failed} failed`);
    if (error) say(`  error: ${error}`);
    say(`  ${ok ? "zlib-cve passed" : "zlib-cve FAILED"} in ${(elapsedMs / 1000).toFixed(1)} s`);
  }
}

say("xsplice zlib-cve: CVE-2022-37434 in a running program's zlib, fixed live from the upstream patch");
await steps.main(run, stopAll, report);
