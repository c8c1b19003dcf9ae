/**
 * `npm run demo` (issue #7): live-patch a vulnerable server while it serves
 * traffic, then take the patch out again.
 *
 *   1. build the server (examples/server/server.c) and its two clients;
 *   2. start the server and a load generator of normal requests;
 *   3. show the exploit working: the server leaks its secret;
 *   4. build the fix (examples/server/fix.c) with `xsplice build` and load it
 *      with `xsplice load` while the load keeps running;
 *   5. show the exploit failing, no normal request failed, and the pause the
 *      server saw (`stopWindowMs` from `xsplice load --json`);
 *   6. revert, show the old behaviour again, stop the load, clean up.
 *
 * Every claim is checked; the exit status is 0 only if every step behaved as
 * claimed. `--json` prints one JSON document (and nothing else) on stdout.
 * Every process the demo starts is stopped at the end, also on failure and
 * on Ctrl-C.
 */
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  buildExamplePayload,
  buildProgram,
  EXAMPLES_DIR,
  LIVE_PATCHABLE_CFLAGS,
  PROGRAMS,
} from "./lib/build.ts";
import { type Program, startProgram } from "./lib/program.ts";
import {
  type ExploitResult,
  type LoadCounts,
  type LoadReport,
  parseCounts,
  parseDone,
  runExploit,
  showBytes,
} from "./lib/server-clients.ts";
import { Steps, type StepsOutcome, shown } from "./lib/steps.ts";
import { missingCommands, runXsplice } from "./lib/xsplice.ts";

/** Facts gathered along the way, for the summary. */
interface Facts {
  serverPid?: number;
  port?: number;
  secret: string;
  leakBefore?: boolean;
  leakPatched?: boolean;
  leakReverted?: boolean;
  patchedReply?: string;
  stopWindowMs?: number;
  revertStopWindowMs?: number;
  /** All stops of the apply and of the revert (seize, safe stop, detach): `pause.totalMs`. */
  pauseMs?: number;
  revertPauseMs?: number;
  loadMs?: number;
  countsBeforeLoad?: LoadCounts;
  countsAfterLoad?: LoadCounts;
  load?: LoadReport;
  payloadBuildId?: string;
}

/** What each step claims; the summary table lists these. */
const CLAIMS = [
  "server, loadgen and exploit built",
  "server up, normal requests answered, none failed",
  "the unpatched server leaks its secret",
  "fix loaded live: state APPLIED, stop window reported",
  "exploit refused, 0 failed requests, traffic kept flowing",
  "reverted and unloaded, exploit works again, 0 failed requests overall",
] as const;
const TITLES = ["build", "start", "exploit works", "load", "patched", "revert"] as const;
const json = process.argv.includes("--json");
const steps = new Steps(CLAIMS, TITLES, json, "demo");
const { say, heading, record, showCommand } = steps;
const LOAD_CONNECTIONS = 4;
/** How long the load runs before the exploit, and on the patched server (ms). */
const WARM_UP_MS = 1000;
const PATCHED_LOAD_MS = 1500;
const facts: Facts = { secret: `tok-${randomBytes(8).toString("hex")}` };
const running: Program[] = [];
let workDir: string | undefined;

/** Find `key` anywhere in a JSON document (the load report's exact shape is the actions command's). */
function findNumber(doc: unknown, key: string): number | undefined {
  if (doc === null || typeof doc !== "object") return undefined;
  const obj = doc as Record<string, unknown>;
  if (typeof obj[key] === "number") return obj[key] as number;
  for (const v of Object.values(obj)) {
    const found = findNumber(v, key);
    if (found !== undefined) return found;
  }
  return undefined;
}

function latestCounts(p: Program): LoadCounts {
  for (let i = p.lines.length - 1; i >= 0; i--) {
    const c = parseCounts(p.lines[i]!);
    if (c) return c;
  }
  return { ok: 0, failed: 0 };
}

/**
 * Let the load run for `ms`, printing its counters every half second (the
 * progress a person watches), and return the last counters.
 */
async function watchLoad(p: Program, ms: number): Promise<LoadCounts> {
  const until = performance.now() + ms;
  while (performance.now() < until && !p.exited) {
    await new Promise((r) => setTimeout(r, Math.min(500, Math.max(0, until - performance.now()))));
    const c = latestCounts(p);
    say(`        … ${String(c.ok).padStart(6)} requests answered, ${c.failed} failed`);
  }
  return latestCounts(p);
}

async function waitForCounts(
  p: Program,
  pred: (c: LoadCounts) => boolean,
  timeoutMs: number,
): Promise<LoadCounts> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const c = latestCounts(p);
    if (pred(c) || performance.now() > deadline || p.exited) return c;
    await new Promise((r) => setTimeout(r, 50));
  }
}

function leaks(r: ExploitResult): boolean {
  return r.status === 0 && r.data.includes(facts.secret);
}

async function stopAll(): Promise<void> {
  await Promise.all(running.map((p) => p.stop("SIGKILL", 1000)));
  if (workDir) rmSync(workDir, { recursive: true, force: true });
  workDir = undefined;
}

/** Run the six steps; returns when one fails (the rest are then recorded as skipped). */
async function run(): Promise<void> {
  // 1. Build.
  heading(1, "Build the vulnerable server and its clients");
  say(`      gcc ${LIVE_PATCHABLE_CFLAGS.join(" ")}`);
  const exes: Record<string, string> = {};
  try {
    for (const spec of [PROGRAMS.server, PROGRAMS.loadgen, PROGRAMS.exploit]) {
      exes[spec.name] = await buildProgram(spec);
      say(`      built ${spec.name.padEnd(8)} ${shown(exes[spec.name]!)}`);
    }
  } catch (err) {
    record({
      step: 1,
      ok: false,
      observed: String(err),
    });
    return;
  }
  record({
    step: 1,
    ok: true,
    observed: "built",
  });

  // 2. Start the server and the load.
  heading(2, "Start the server and a load generator of normal requests");
  const { program: server, readyLine } = await startProgram(exes["server"]!, ["--exit-on-eof"], {
    env: { SERVER_SECRET: facts.secret },
  });
  running.push(server);
  facts.serverPid = server.pid;
  facts.port = Number(/port=(\d+)/.exec(readyLine)?.[1]);
  say(`      server pid ${server.pid} listening on 127.0.0.1:${facts.port} (secret ${facts.secret})`);
  const { program: loadgen } = await startProgram(
    exes["loadgen"]!,
    ["--port", String(facts.port), "--connections", String(LOAD_CONNECTIONS)],
    { ready: /^started / },
  );
  running.push(loadgen);
  say(
    `      loadgen: ${LOAD_CONNECTIONS} connections, each sending ECHO/PING requests in a loop and checking every reply`,
  );
  await waitForCounts(loadgen, (c) => c.ok > 0, 5000);
  const warm = await watchLoad(loadgen, WARM_UP_MS);
  if (
    !record({
      step: 2,
      ok: warm.ok > 0 && warm.failed === 0,
      observed: `${warm.ok} ok, ${warm.failed} failed`,
      data: { pid: server.pid, port: facts.port, ...warm },
    })
  )
    return;

  // 3. The exploit.
  heading(3, "Exploit CVE-2026-0001: ECHO trusts the length the client asks for");
  say(`      $ exploit --port ${facts.port} --len 200     # sends 2 bytes, asks for 200 back`);
  const before = await runExploit(exes["exploit"]!, facts.port);
  facts.leakBefore = leaks(before);
  say(`      reply: ${before.reply}`);
  say(`      data:  ${showBytes(before.data)}`);
  if (
    !record({
      step: 3,
      ok: facts.leakBefore,
      observed: facts.leakBefore ? "secret leaked" : `no leak (${before.reply || before.output.trim()})`,
      data: { reply: before.reply, leakedBytes: before.data.length, secretLeaked: facts.leakBefore },
    })
  )
    return;

  // 4. Build the fix and load it live.
  heading(4, "Build the fix and load it into the running server, under load");
  workDir = mkdtempSync(join(tmpdir(), "xsplice-demo-"));
  const payload = join(workDir, "fix.xsplice");
  const missing = await missingCommands(["load", "revert", "unload", "get"]);
  say(`      $ xsplice build ${shown(join(EXAMPLES_DIR, "server/fix.c"))} --target server -o fix.xsplice`);
  let built: Awaited<ReturnType<typeof buildExamplePayload>>;
  try {
    built = await buildExamplePayload("server/fix.c", exes["server"]!, payload);
  } catch (err) {
    record({ step: 4, ok: false, observed: String(err) });
    return;
  }
  facts.payloadBuildId = built.buildId;
  for (const f of built.funcs)
    say(`        ${f.name} → ${f.replacement} (${f.newSize} bytes), build-id ${built.buildId}`);
  if (missing.length > 0) {
    record({
      step: 4,
      ok: false,
      observed: `this checkout's xsplice has no ${missing.join("/")} command yet (issues #4, #5)`,
      data: { missing },
    });
    return;
  }
  const loadStart = latestCounts(loadgen);
  facts.countsBeforeLoad = loadStart;
  const load = await runXsplice(["load", String(server.pid), payload, "--name", "fix", "--json"]);
  showCommand(load.args);
  facts.loadMs = load.elapsedMs;
  facts.stopWindowMs = findNumber(load.json, "stopWindowMs");
  facts.pauseMs = findNumber(load.json, "totalMs");
  for (const w of (load.json as { warnings?: unknown[] } | undefined)?.warnings ?? [])
    say(`      warning: ${String(w)}`);
  const get = load.status === 0 ? await runXsplice(["get", String(server.pid), "fix", "--json"]) : undefined;
  const state = (get?.json as { state?: string } | undefined)?.state;
  say(
    load.status === 0
      ? `      applied in ${load.elapsedMs.toFixed(0)} ms (whole command); server stopped for ${facts.stopWindowMs?.toFixed(3) ?? "?"} ms for the writes, ${facts.pauseMs?.toFixed(3) ?? "?"} ms in all; state ${state}`
      : `      xsplice load failed: ${load.error}`,
  );
  if (
    !record({
      step: 4,
      ok: load.status === 0 && state === "APPLIED" && facts.stopWindowMs !== undefined,
      observed:
        load.status !== 0
          ? `exit ${load.status}: ${load.error}`
          : `state ${state}, stopWindowMs ${facts.stopWindowMs?.toFixed(3) ?? "missing from the --json output"}`,
      data: {
        exit: load.status,
        state,
        stopWindowMs: facts.stopWindowMs,
        revertStopWindowMs: facts.revertStopWindowMs,
        buildId: built.buildId,
        load: load.json,
      },
    })
  )
    return;

  // 5. The patched server.
  heading(5, "The patched server: exploit refused, normal traffic untouched");
  const patched = await runExploit(exes["exploit"]!, facts.port);
  facts.leakPatched = leaks(patched);
  facts.patchedReply = patched.reply;
  say(`      $ exploit --port ${facts.port} --len 200`);
  say(`      reply: ${patched.reply}`);
  // Let the load run on the patched code for a while, then look at the counters.
  say(`      the load keeps running on the patched code:`);
  const after = await watchLoad(loadgen, PATCHED_LOAD_MS);
  facts.countsAfterLoad = after;
  const servedSince = after.ok - loadStart.ok;
  say(`      loadgen: ${after.ok} answered (${servedSince} since the load began), ${after.failed} failed`);
  say(
    `      pause the server saw: ${facts.stopWindowMs?.toFixed(3)} ms for the writes (stopWindowMs), ${facts.pauseMs?.toFixed(3) ?? "?"} ms over every stop of the apply (pause.totalMs)`,
  );
  const ok5 = !facts.leakPatched && patched.status === 3 && after.failed === 0 && servedSince > 0;
  let firstError = "";
  if (after.failed > 0) {
    // Stop the load now to get its report: the first failure says what went wrong.
    await loadgen.stop("SIGTERM", 5000);
    facts.load = parseDone(loadgen.lines);
    firstError = facts.load?.firstError ? ` (first: ${facts.load.firstError})` : "";
  }
  if (
    !record({
      step: 5,
      ok: ok5,
      observed: `exploit ${facts.leakPatched ? "still leaks" : patched.reply}; ${after.failed} failed${firstError}, ${servedSince} served since load`,
      data: { reply: patched.reply, secretLeaked: facts.leakPatched, ...after, servedSinceLoad: servedSince },
    })
  )
    return;

  // 6. Revert and clean up.
  heading(6, "Revert the fix, see the old behaviour, clean up");
  const revert = await runXsplice(["revert", String(server.pid), "fix", "--json"]);
  showCommand(revert.args);
  facts.revertStopWindowMs = findNumber(revert.json, "stopWindowMs");
  facts.revertPauseMs = findNumber(revert.json, "totalMs");
  say(
    revert.status === 0
      ? `      reverted; server stopped for ${facts.revertStopWindowMs?.toFixed(3) ?? "?"} ms`
      : `      xsplice revert failed: ${revert.error}`,
  );
  const reverted = await runExploit(exes["exploit"]!, facts.port);
  facts.leakReverted = leaks(reverted);
  say(
    `      exploit again → ${reverted.reply}: ${facts.leakReverted ? "the secret leaks again" : "no leak"}`,
  );
  const unload =
    revert.status === 0 ? await runXsplice(["unload", String(server.pid), "fix", "--json"]) : undefined;
  if (unload) showCommand(unload.args);
  await loadgen.stop("SIGTERM", 5000);
  facts.load = parseDone(loadgen.lines);
  const l = facts.load;
  say(
    l
      ? `      loadgen stopped: ${l.ok} ok, ${l.failed} failed; latency p50 ${l.p50Us} µs, p99 ${l.p99Us} µs, max ${(l.maxUs / 1000).toFixed(1)} ms`
      : "      loadgen stopped without its report",
  );
  if (l?.firstError) say(`      first failure: ${l.firstError}`);
  await server.stop("SIGTERM");
  say(`      server stopped (${server.exitStatus})`);
  record({
    step: 6,
    ok:
      revert.status === 0 && unload?.status === 0 && facts.leakReverted && l !== undefined && l.failed === 0,
    observed:
      revert.status !== 0
        ? `revert exit ${revert.status}: ${revert.error}`
        : unload?.status !== 0
          ? `unload exit ${unload?.status}: ${unload?.error}`
          : `leak ${facts.leakReverted ? "back" : "absent"}, ${l?.failed ?? "?"} failed of ${l ? l.ok + l.failed : "?"}`,
    data: {
      revertExit: revert.status,
      unloadExit: unload?.status,
      secretLeaked: facts.leakReverted,
      load: l,
    },
  });
}

function summaryTable(): string[] {
  const rows = steps.results.map((r) => [
    String(r.step),
    r.claim,
    r.skipped ? "skipped" : r.ok ? "ok" : "FAILED",
    r.observed,
  ]);
  const width = [4, Math.max(5, ...rows.map((r) => r[1]!.length)), 7];
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i < width.length ? c.padEnd(width[i]!) : c))
      .join("  ")
      .trimEnd();
  return [
    line(["step", "claim", "result", "observed"]),
    line(["----", "-".repeat(width[1]!), "-------", "--------"]),
    ...rows.map(line),
  ];
}

function report({ ok, elapsedMs, error }: StepsOutcome): void {
  if (json) {
    const doc = {
      ok,
      elapsedMs,
      steps: steps.results,
      summary: {
        serverPid: facts.serverPid,
        port: facts.port,
        secretLeakedBefore: facts.leakBefore,
        secretLeakedPatched: facts.leakPatched,
        secretLeakedReverted: facts.leakReverted,
        patchedReply: facts.patchedReply,
        stopWindowMs: facts.stopWindowMs,
        revertStopWindowMs: facts.revertStopWindowMs,
        loadCommandMs: facts.loadMs === undefined ? undefined : Math.round(facts.loadMs),
        requests: facts.load,
        payloadBuildId: facts.payloadBuildId,
      },
      ...(error === undefined ? {} : { error }),
    };
    process.stdout.write(`${JSON.stringify(doc, null, 2)}\n`);
  } else {
    say();
    say("Summary");
    for (const l of summaryTable()) say(`  ${l}`);
    if (facts.load) {
      say(
        `  requests: ${facts.load.ok} ok, ${facts.load.failed} failed; max request latency ${(facts.load.maxUs / 1000).toFixed(1)} ms`,
      );
      say(
        `  the server was stopped for ${facts.stopWindowMs?.toFixed(3) ?? "?"} ms to write the fix ` +
          `(${facts.pauseMs?.toFixed(3) ?? "?"} ms over all stops of the apply), ` +
          `${facts.revertStopWindowMs?.toFixed(3) ?? "?"} ms to revert it (${facts.revertPauseMs?.toFixed(3) ?? "?"} ms in all)`,
      );
    }
    if (error) say(`  error: ${error}`);
    say(`  ${ok ? "demo passed" : "demo FAILED"} in ${(elapsedMs / 1000).toFixed(1)} s`);
  }
}

say("xsplice demo: fix a leaking server while it serves traffic, then take the fix out again");
await steps.main(run, stopAll, report);
