/**
 * SIGKILL of xsplice while it creates a process's inject page — the first
 * injection into a fresh process, which the first upload of every process
 * makes (issue #11 item 4: the old single-stepped bootstrap killed 6 of 42
 * targets with SIGTRAP). Each round starts a fresh multi-threaded target with
 * a thread in nanosleep (the system call whose restart depends on state a
 * careless restore destroys), lets a child tracer bootstrap on that thread and
 * kills it at a random moment of the creation. Then:
 * - the target is alive and its workers never computed a wrong result;
 * - the sleeping thread slept its full time, not less;
 * - a new tracer finds what the killed one left (a thread in the bootstrap
 *   stub, a half-made page, a leaked descriptor), puts it right and injects;
 * - afterwards every executable byte of the program is what it was, exactly
 *   one inject page is mapped and no descriptor of it is left open.
 * XSPLICE_BOOT_KILLS sets the number of rounds (default 40); XSPLICE_TEST_SEED
 * replays a run (the seed is printed).
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { readdirSync, readFileSync, readlinkSync } from "node:fs";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { findInjectPage } from "../../src/process/inject-page.ts";
import { readMaps } from "../../src/process/maps.ts";
import { readMemory } from "../../src/process/memory.ts";
import { finishLeftoverInjections, remoteSyscall } from "../../src/process/remote-call.ts";
import { SYS } from "../../src/process/syscalls.ts";
import { Tracee } from "../../src/process/threads.ts";
import { nodeCommand } from "../helpers/bundle.ts";
import { compileC } from "../helpers/cc.ts";
import { prng } from "../helpers/prng.ts";
import { startTarget, type Target } from "../helpers/target.ts";
import { WAIT_MS } from "../helpers/wait.ts";

const exe = compileC({ sources: ["process/target.c"], kind: "exe", libs: ["-lpthread"] });
const fixture = fileURLToPath(new URL("../fixtures/process/bootstrapper.ts", import.meta.url));
const ROUNDS = Number(process.env.XSPLICE_BOOT_KILLS ?? 40);
const SEED = Number(process.env.XSPLICE_TEST_SEED ?? Date.now() % 1_000_000);
const SLEEP_MS = 700;

/** Every executable mapping's bytes, but xsplice's own page. */
function codeOf(pid: number): Map<bigint, Buffer> {
  const out = new Map<bigint, Buffer>();
  for (const m of readMaps(pid))
    if (m.perms.exec && !m.path.startsWith("/memfd:xsplice-inject") && m.path !== "[vsyscall]")
      out.set(m.start, Buffer.from(readMemory(pid, m.start, Number(m.end - m.start))));
  return out;
}

/** Descriptors of `pid` open on the inject memfd. */
function injectDescriptors(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).filter((fd) => {
    try {
      return readlinkSync(`/proc/${pid}/fd/${fd}`).startsWith("/memfd:xsplice-inject");
    } catch {
      return false;
    }
  }).length;
}

/** The thread of `pid` blocked in (clock_)nanosleep, or undefined. */
function sleeper(pid: number): number | undefined {
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      const nr = readFileSync(`/proc/${pid}/task/${tid}/syscall`, "utf8").split(" ")[0];
      if (nr === "35" || nr === "230") return Number(tid);
    } catch {
      // gone
    }
  }
  return undefined;
}

async function until<T>(what: string, probe: () => T | undefined, ms = WAIT_MS): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = probe();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setImmediate(r));
  }
}

function alive(pid: number): boolean {
  try {
    return !/\) [ZX] /.test(readFileSync(`/proc/${pid}/stat`, "utf8"));
  } catch {
    return false;
  }
}

async function status(t: Target): Promise<number> {
  const from = t.lines.length;
  t.send("status");
  return Number(/errors=(\d+)/.exec(await t.waitFor(/^status /, { from }))![1]);
}

describe("xsplice killed while it creates the inject page", { timeout: 600_000 }, () => {
  it(`${ROUNDS} fresh processes, each killed at a random moment of the bootstrap`, async () => {
    console.log(`# seed ${SEED} (XSPLICE_TEST_SEED=${SEED} replays it)`);
    const rand = prng(SEED);
    const command = await nodeCommand(fixture);
    const outcome = { done: 0, leftThread: 0, halfMade: 0, leakedFd: 0, untouched: 0 };
    for (let round = 0; round < ROUNDS; round++) {
      const t = await startTarget(exe, ["2", "spin"]);
      let child: ChildProcess | undefined;
      try {
        const before = codeOf(t.pid);
        const out: string[] = [];
        // The tracer is told the sleeper's tid once it sleeps: it reads "TID\n" on stdin.
        child = spawn(process.execPath, [...command, String(t.pid)], { stdio: ["pipe", "pipe", "inherit"] });
        child.stdout!.on("data", (b: Buffer) => out.push(b.toString()));
        const exited = new Promise((r) => child!.once("exit", r));
        await until("the tracer to start", () => (out.join("").includes("ready") ? true : undefined));
        t.send(`sleep ${SLEEP_MS}`);
        const tid = await until("the sleeping thread", () => sleeper(t.pid));
        child.stdin!.write(`${tid}\n`);
        // Kill at a random moment of the first 15 ms after the seize: the bootstrap calls and the
        // first injection take 5-20 ms here; the outcome counts below say where the kills landed.
        // Stratified (round r draws from the r-th slice of the 15 ms), so that the early kills and
        // the late ones both happen whatever the draws: the window checks below cannot miss by chance.
        await until("the seize", () => (out.join("").includes("seized") ? true : undefined));
        const end = performance.now() + ((round + rand()) / ROUNDS) * 15;
        while (performance.now() < end) {
          // busy-wait: a timer's granularity is coarser than the window
        }
        child.kill("SIGKILL");
        await exited;
        if (out.join("").includes("done")) outcome.done++;
        assert.ok(!out.join("").includes("BAD"), out.join(""));
        // The target carries on by itself: no SIGTRAP, no wrong result, the sleep keeps its length.
        assert.ok(alive(t.pid), `round ${round}: the target died when its tracer was killed`);
        const slept = Number(
          (await t.waitFor(/^slept /, { from: 0, timeoutMs: SLEEP_MS + WAIT_MS })).split(" ")[1],
        );
        assert.ok(slept >= SLEEP_MS, `round ${round}: nanosleep(${SLEEP_MS}) returned after ${slept} ms`);
        assert.equal(await status(t), 0, `round ${round}: a worker computed a wrong result`);
        const found = findInjectPage(t.pid);
        if (found.kind === "half-made") outcome.halfMade++;
        if (injectDescriptors(t.pid) > 0) outcome.leakedFd++;
        if (found.kind === "none") outcome.untouched++;
        // A new tracer puts right what the killed one left, and injects.
        const tr = Tracee.seize(t.pid, { timeoutMs: 5000 });
        try {
          outcome.leftThread += finishLeftoverInjections(tr);
          for (const th of tr.threads) assert.equal(remoteSyscall(tr, th, SYS.getpid, []), BigInt(t.pid));
        } finally {
          tr.detach();
        }
        assert.equal(findInjectPage(t.pid).kind, "page", `round ${round}: one complete inject page`);
        assert.equal(injectDescriptors(t.pid), 0, `round ${round}: no descriptor of the page left open`);
        const after = codeOf(t.pid);
        for (const [at, bytes] of before)
          assert.ok(after.get(at)?.equals(bytes), `round ${round}: code at 0x${at.toString(16)} changed`);
        assert.equal(await status(t), 0);
      } finally {
        child?.kill("SIGKILL");
        await t.kill();
      }
    }
    console.log(`# ${ROUNDS} rounds: ${JSON.stringify(outcome)}`);
    // The kills must have landed inside the creation, not only before or after it.
    assert.ok(outcome.done < ROUNDS, "every round finished before the kill: the window was missed");
    assert.ok(outcome.untouched < ROUNDS, "no round got as far as the bootstrap: the window was missed");
  });
});
