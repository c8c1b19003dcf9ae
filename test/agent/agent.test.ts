/**
 * `xsplice agent` (SPEC §14, issue #14 tests), run as its unit runs it: a
 * payload dropped into the directory reaches every running process of its
 * target and every later one before main (each proves it by its own output);
 * a replaced file is a REPLACE, a removed one is reverted and unloaded; a
 * payload the policy refuses is reported and never applied; SIGKILLs at
 * random moments leave every process wholly patched or not and a restarted
 * agent converges; a fork-exec storm leaves nothing stopped or traced.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { copyFileSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync } from "node:fs";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { list } from "../../src/core/api.ts";
import { opensslKeyPair, tempDir } from "../cli/_run.ts";
import { prng } from "../helpers/prng.ts";
import { startTarget, type Target } from "../helpers/target.ts";
import { auditLines, type RunningAgent, runOnce, spawnAgent, startAgent, until } from "./_agent.ts";
import {
  agentPayload,
  agentTarget,
  ask,
  FIX_VALUE,
  FIX2_VALUE,
  OLD_VALUE,
  startTargets,
} from "./_fixture.ts";

let exe: string;
let fix: string;
let fix2: string;
const tmp = tempDir("agent");
const targets: Target[] = [];
const agents: RunningAgent[] = [];

before(() => {
  exe = agentTarget();
  fix = agentPayload("fix.c", exe);
  fix2 = agentPayload("fix2.c", exe);
});
after(async () => {
  for (const a of agents) await a.kill().catch(() => undefined);
  await Promise.all(targets.map((t) => t.kill()));
  tmp.remove();
});

/** Put `src` into `dir` as `name` atomically (as a package manager would). */
function install(src: string, dir: string, name: string): void {
  copyFileSync(src, join(dir, `.${name}.tmp`));
  renameSync(join(dir, `.${name}.tmp`), join(dir, name));
}

async function names(pid: number): Promise<string[]> {
  return (await list(pid)).payloads.map((p) => `${p.name}:${p.state}`);
}

test("running processes and 50 new ones get the payload; replaced is REPLACE, removed is reverted and unloaded", async () => {
  const dir = join(tmp.dir, "d1");
  const state = join(tmp.dir, "s1");
  mkdirSync(dir);
  mkdirSync(state);
  const running = await startTargets(exe, 3, []);
  targets.push(...running);
  const agent = await startAgent(dir, state);
  agents.push(agent);

  install(fix, dir, "fix.xsplice");
  await until(
    "the running processes patched",
    async () => {
      const vals = await Promise.all(running.map((t) => ask(t)));
      return vals.every((v) => v.value === FIX_VALUE);
    },
    agent,
  );

  // Every new process ran only the patched answer(), from main's first line on.
  for (let i = 0; i < 50; i++)
    assert.equal(await runOnce(exe), `first=${FIX_VALUE} old_calls=0\n`, `start ${i}`);

  const st = await agent.status();
  assert.equal(st.agent.gate, "on");
  assert.equal(st.payloads.length, 1);
  for (const t of running) {
    const row = st.processes.find((p) => p.pid === t.pid);
    assert.deepEqual(
      row?.payloads.map((p) => p.status),
      ["applied"],
      JSON.stringify(st),
    );
  }

  // A replaced file: the new version takes over in one stop (REPLACE), the old one is unloaded.
  install(fix2, dir, "fix.xsplice");
  await until("the replacement applied", async () => (await ask(running[0]!)).value === FIX2_VALUE, agent);
  await until(
    "every process on the new version",
    async () => {
      const vals = await Promise.all(running.map((t) => ask(t)));
      return vals.every((v) => v.value === FIX2_VALUE);
    },
    agent,
  );
  for (const t of running) {
    const n = await names(t.pid);
    assert.equal(n.length, 1, n.join());
    assert.match(n[0]!, /^fix@[0-9a-f]{12}:APPLIED$/);
  }
  assert.ok(auditLines(agent.audit).some((l) => l.what.action === "replace" && l.result === "ok"));
  assert.equal(await runOnce(exe), `first=${FIX2_VALUE} old_calls=0\n`);

  // Removed: reverted and unloaded everywhere; new processes run the original.
  rmSync(join(dir, "fix.xsplice"));
  await until(
    "reverted everywhere",
    async () => {
      const all = await Promise.all(running.map((t) => names(t.pid)));
      return all.every((n) => n.length === 0);
    },
    agent,
  );
  for (const t of running) assert.equal((await ask(t)).value, OLD_VALUE);
  assert.equal(await runOnce(exe), `first=${OLD_VALUE} old_calls=1\n`);
  const m = auditLines(agent.audit);
  assert.ok(m.some((l) => l.what.action === "revert" && l.result === "ok"));
  assert.ok(m.some((l) => l.what.action === "unload" && l.result === "ok"));

  assert.equal(await agent.stop(), 0, agent.stderr());
  agents.splice(agents.indexOf(agent), 1);
});

test("an unsigned payload under a signature policy is refused and reported, never applied", async () => {
  const dir = join(tmp.dir, "d2");
  const state = join(tmp.dir, "s2");
  mkdirSync(dir);
  mkdirSync(state);
  const keys = opensslKeyPair(state, "k", "ed25519");
  const [t] = await startTargets(exe, 1, []);
  targets.push(t!);
  const agent = await startAgent(dir, state, ["--require-signature", "--trusted-key", keys.pub]);
  agents.push(agent);
  install(fix, dir, "unsigned.xsplice");
  await until("the refusal reported", async () => (await agent.status()).rejected.length === 1, agent);
  const st = await agent.status();
  assert.equal(st.rejected[0]!.error, "EKEYREJECTED");
  assert.equal(st.payloads.length, 0);
  assert.equal((await ask(t!)).value, OLD_VALUE);
  assert.equal(await runOnce(exe), `first=${OLD_VALUE} old_calls=1\n`);
  assert.ok(auditLines(agent.audit).some((l) => l.what.action === "refuse" && l.result === "EKEYREJECTED"));
  assert.equal(await agent.stop(), 0);
  agents.splice(agents.indexOf(agent), 1);
});

/** `XSPLICE_AGENT_KILLS` / `XSPLICE_AGENT_STORM` lower the issue's numbers for a quick run. */
function count(env: string, issue: number): number {
  const v = process.env[env];
  if (v === undefined) return issue;
  if (!/^\d+$/.test(v) || Number(v) < 1) throw new Error(`${env}=${v}: want a positive integer`);
  return Number(v);
}

/** What `agent-target once` may print: patched before main (either version), or never patched. */
const ONCE_OUTPUTS = [
  `first=${FIX_VALUE} old_calls=0\n`,
  `first=${FIX2_VALUE} old_calls=0\n`,
  `first=${OLD_VALUE} old_calls=1\n`,
];

/** /proc/PID/status says the process is stopped or traced. */
function stoppedOrTraced(pid: number): string | undefined {
  let status: string;
  try {
    status = readFileSync(`/proc/${pid}/status`, "utf8");
  } catch {
    return undefined;
  }
  const state = /^State:\s*(\S)/m.exec(status)?.[1];
  const tracer = /^TracerPid:\s*(\d+)/m.exec(status)?.[1];
  if (state === "T" || state === "t" || tracer !== "0") return `pid ${pid}: state ${state}, tracer ${tracer}`;
  return undefined;
}

test("SIGKILLed at random moments, the agent never leaves a process half-patched, and a restart converges", async () => {
  const seed = Number(process.env["XSPLICE_SEED"] ?? Date.now() % 1_000_000);
  const KILLS = count("XSPLICE_AGENT_KILLS", 100);
  console.log(`# agent kill test: ${KILLS} kills, seed ${seed} (XSPLICE_SEED=${seed} replays it)`);
  const rnd = prng(seed);
  const dir = join(tmp.dir, "d3");
  const state = join(tmp.dir, "s3");
  mkdirSync(dir);
  mkdirSync(state);
  // Long-running processes; some exit and others start as the kills go on.
  const running = await startTargets(exe, 3, []);
  targets.push(...running);
  const t0 = Date.now();
  let beforeServing = 0;
  let acted = 0;
  let starts = 0;
  // Where each kill's time goes, printed at the end (the file's time is budgeted).
  const phase = { alive: 0, teardown: 0, starts: 0, checks: 0 };
  let mark = performance.now();
  const lap = (p: keyof typeof phase) => {
    const now = performance.now();
    phase[p] += now - mark;
    mark = now;
  };
  for (let k = 0; k < KILLS; k++) {
    mark = performance.now();
    // Kill it anywhere from its start-up (gate and workers coming up, first scan) to its steady state.
    const agent = spawnAgent(dir, state, [], { ownGroup: true });
    agents.push(agent);
    // Change the directory (add, replace or remove the payload) before it starts (its first scan
    // does the work) or once it serves (fs.watch starts a scan on the warm workers).
    const r = rnd();
    const change = () => {
      if (r < 0.4) install(fix, dir, "fix.xsplice");
      else if (r < 0.7) install(fix2, dir, "fix.xsplice");
      else rmSync(join(dir, "fix.xsplice"), { force: true });
    };
    const late = rnd() < 0.5;
    if (!late) change();
    // Processes start (one-shot, and sometimes a long-running one) and exit meanwhile.
    const oneShot = runOnce(exe);
    let newcomer: Promise<Target> | undefined;
    if (rnd() < 0.3) {
      const gone = running.splice(Math.floor(rnd() * running.length), 1)[0]!;
      void gone.kill();
      newcomer = startTarget(exe);
    }
    // Up to about its start-up time (the gate, the workers, the first scan: 1-2.5 s here), so
    // kills land before, during and after its first convergence.
    const delay = Math.floor(rnd() * 2500);
    const auditBefore = auditLines(agent.audit).length;
    const served = await Promise.race([
      agent.ready.then(() => true),
      new Promise<false>((res) => setTimeout(() => res(false), delay)),
    ]).catch(() => false);
    if (late) change();
    if (served) await new Promise((res) => setTimeout(res, Math.floor(rnd() * 300)));
    else beforeServing++;
    await agent.kill();
    if (auditLines(agent.audit).length > auditBefore) acted++;
    agents.splice(agents.indexOf(agent), 1);
    lap("alive");
    // Its gate and workers end when their current step does (never mid-operation): wait for that,
    // so what is checked below cannot change under the check.
    await until(`agent ${agent.child.pid}'s gate and workers gone`, () => agent.groupLeft().length === 0);
    lap("teardown");
    if (newcomer) {
      const t = await newcomer;
      targets.push(t);
      running.push(t);
      starts++;
    }
    const once = await oneShot;
    assert.ok(ONCE_OUTPUTS.includes(once), `kill ${k}: a new process printed ${JSON.stringify(once)}`);
    lap("starts");
    // Each process is wholly one version: the code it runs is what its registry says is applied.
    for (const t of running) {
      const why = stoppedOrTraced(t.pid);
      assert.equal(why, undefined, `kill ${k}: ${why}`);
      const applied = (await list(t.pid)).payloads.filter((p) => p.state === "APPLIED");
      assert.ok(applied.length <= 1, JSON.stringify(applied));
      const v = (await ask(t)).value;
      assert.ok([OLD_VALUE, FIX_VALUE, FIX2_VALUE].includes(v), `value ${v}`);
      if (applied.length === 0)
        assert.equal(v, OLD_VALUE, `kill ${k}: pid ${t.pid}: nothing applied but runs ${v}`);
      else
        assert.notEqual(
          v,
          OLD_VALUE,
          `kill ${k}: pid ${t.pid}: ${applied[0]!.name} applied but runs the original`,
        );
    }
    lap("checks");
  }
  console.log(
    `# ${KILLS} kills (${beforeServing} before the agent served, ${acted} after it had acted), ${starts} long-running starts, ${((Date.now() - t0) / KILLS).toFixed(0)} ms per kill (${Object.entries(
      phase,
    )
      .map(([p, ms]) => `${p} ${(ms / KILLS).toFixed(0)}`)
      .join(", ")})`,
  );
  // A restarted agent converges to what the directory holds.
  const present = readdirSync(dir).includes("fix.xsplice");
  const want = present
    ? readFileSync(join(dir, "fix.xsplice")).equals(readFileSync(fix))
      ? FIX_VALUE
      : FIX2_VALUE
    : OLD_VALUE;
  const agent = await startAgent(dir, state);
  agents.push(agent);
  await until(
    `every process at ${want}`,
    async () => {
      const vals = await Promise.all(running.map((t) => ask(t)));
      const regs = await Promise.all(running.map((t) => names(t.pid)));
      return vals.every((v) => v.value === want) && regs.every((n) => n.length === (present ? 1 : 0));
    },
    agent,
  );
  assert.equal(await runOnce(exe), want === OLD_VALUE ? ONCE_OUTPUTS[2] : `first=${want} old_calls=0\n`);
  assert.equal(await agent.stop(), 0);
  agents.splice(agents.indexOf(agent), 1);
  for (const t of running) assert.equal(stoppedOrTraced(t.pid), undefined);
});

test("a fork-exec storm of short-lived processes leaves nothing stopped or traced", async () => {
  const dir = join(tmp.dir, "d4");
  const state = join(tmp.dir, "s4");
  mkdirSync(dir);
  mkdirSync(state);
  install(fix, dir, "fix.xsplice");
  const agent = await startAgent(dir, state);
  agents.push(agent);
  const N = count("XSPLICE_AGENT_STORM", 500);
  console.log(`# fork-exec storm of ${N} processes`);
  const out = await new Promise<string>((resolve, reject) =>
    execFile(
      "/bin/sh",
      ["-c", `i=0; while [ $i -lt ${N} ]; do "$0" once & i=$((i+1)); done; wait`, exe],
      { timeout: 300_000, maxBuffer: 1 << 22 },
      (err, stdout) => (err ? reject(err) : resolve(stdout)),
    ),
  );
  const lines = out.split("\n").filter((l) => l !== "");
  assert.equal(lines.length, N);
  // Every start was gated: none ran the original.
  assert.deepEqual([...new Set(lines)], [`first=${FIX_VALUE} old_calls=0`]);
  assert.equal(await agent.stop(), 0);
  agents.splice(agents.indexOf(agent), 1);
  // Nothing of the target left behind, stopped or traced.
  const left = readdirSync("/proc")
    .filter((d) => /^\d+$/.test(d))
    .filter((d) => {
      try {
        const status = readFileSync(`/proc/${d}/status`, "utf8");
        return /^Name:\s*agent-target/m.test(status) && !targets.some((t) => t.pid === Number(d));
      } catch {
        return false;
      }
    });
  assert.deepEqual(left, []);
});
