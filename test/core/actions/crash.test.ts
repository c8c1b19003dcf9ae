/**
 * Crash safety (SPEC §8): an xsplice library user is SIGKILLed at random
 * points of apply/revert/replace; a fresh open then recovers the journal, and
 * the registry must agree with the code and with behaviour: the function
 * returns the top APPLIED payload's value (the original without one), its
 * bytes equal exactly the original or that payload's trampoline, the applied
 * payloads form a proper stack, no journal and no EAGAIN remain. The
 * target's workers check every result themselves and count queued signals.
 *
 * XSPLICE_KILLS sets the number of kills (default 200); the kill moments and
 * each killer's choices come from a printed seed (XSPLICE_SEED replays them). Each kill costs a
 * Node start, so the killer runs bundled (test/helpers/bundle.ts) and the
 * next ones start ahead while a kill is being checked: about 0.15 s a kill.
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { upload } from "../../../src/core/api.ts";
import "../../../src/core/execute.ts"; // registers journal recovery on open
import { readTargetRegistry } from "../../../src/core/registry/remote.ts";
import { withTarget } from "../../../src/core/session.ts";
import { hexBytes as toHex } from "../../../src/hex.ts";
import { readMemory } from "../../../src/process/memory.ts";
import { nodeCommand } from "../../helpers/bundle.ts";
import { ROOT } from "../../helpers/cc.ts";
import { prng } from "../../helpers/prng.ts";
import { symbolAddress } from "../../helpers/target.ts";
import { waitUntil } from "../../helpers/wait.ts";
import { actionPayload } from "./_hand.ts";
import { actionsTargetForFile, callOld, oldFormula, status } from "./_target.ts";

const KILLS = Number(process.env["XSPLICE_KILLS"] ?? 200);
const AHEAD = 2;
const SEED = Number(process.env["XSPLICE_SEED"] ?? Date.now() % 2 ** 31);
const t = actionsTargetForFile(2);

interface Killer {
  proc: ChildProcess;
  /** Resolves when the killer has made its first attempt and is acting ("go"). */
  going: Promise<void>;
  exited: Promise<void>;
}

/**
 * Start a killer on the target; it loads and then waits for a line on stdin,
 * so it can be started while the previous kill is being checked.
 */
function startKiller(command: string[], seed: number, names: string[]): Killer {
  const proc = spawn(process.execPath, [...command, String(t.pid), String(seed), ...names], {
    stdio: ["pipe", "pipe", "inherit"],
    cwd: ROOT,
  });
  const exited = new Promise<void>((r) => proc.once("exit", () => r()));
  const going = new Promise<void>((resolve, reject) => {
    proc.stdout!.once("data", () => resolve());
    proc.once("error", reject);
    proc.once("exit", (code, sig) => reject(new Error(`killer exited (${code ?? sig}) before "go"`)));
  });
  going.catch(() => {}); // a killer never let go fails nothing
  return { proc, going, exited };
}

test(`SIGKILL of xsplice at random points, ${KILLS} times: every payload wholly applied or not`, async () => {
  const pA = actionPayload("fix.c", t.exe);
  const pB = actionPayload("fix.c", t.exe, { depends: pA, cflags: ["-DDELTA=2000"] });
  const pC = actionPayload("fix.c", t.exe, { cflags: ["-DDELTA=3000"] });
  const delta: Record<string, bigint> = { ka: 1000n, kb: 2000n, kc: 3000n };
  await upload(t.pid, "ka", new Uint8Array(readFileSync(pA)));
  await upload(t.pid, "kb", new Uint8Array(readFileSync(pB)));
  await upload(t.pid, "kc", new Uint8Array(readFileSync(pC)));
  const oldAddr = symbolAddress(t.pid, t.exe, "old_fn");
  const original = toHex(readMemory(t.pid, oldAddr, 16));
  console.log(`# seed ${SEED} (XSPLICE_SEED=${SEED} replays the kill moments and the killers' choices)`);
  const next = prng(SEED);
  const rand = (n: number) => Math.floor(next() * n);
  let recovered = 0;
  const seen = new Map<string, number>();
  const command = await nodeCommand(join(ROOT, "test/fixtures/actions/killer.ts"));
  const names = ["ka", "kb", "kc"];
  const t0 = performance.now();
  // Killers are started AHEAD in advance (they load, then wait for a line on stdin), so node's
  // start-up overlaps the previous kills and their checks; 2 measured best on 2 busy cores.
  const pool: Killer[] = [];
  let started = 0;
  const fill = (n: number) => {
    for (; pool.length < n && started < KILLS; started++)
      pool.push(startKiller(command, SEED + started, names));
  };
  try {
    fill(AHEAD);
    for (let i = 0; i < KILLS; i++) {
      const killer = pool.shift()!;
      killer.proc.stdin!.write("\n");
      fill(AHEAD);
      try {
        await killer.going;
        await new Promise((r) => setTimeout(r, rand(40)));
      } finally {
        killer.proc.kill("SIGKILL");
        await killer.exited;
      }
      // A fresh open runs recovery first; then compare registry, code and behaviour.
      const journal = readTargetRegistry(t.pid)?.state.journal;
      if (journal) recovered++;
      const st = withTarget(t.pid, {}, (s) => s.state);
      assert.equal(st.journal, undefined, "journal cleared");
      for (const p of st.payloads) assert.notEqual(p.rc, -11, `${p.name} left at EAGAIN`);
      const applied = st.payloads
        .filter((p) => p.state === "APPLIED")
        .sort((a, b) => a.appliedSeq - b.appliedSeq);
      const key = applied.map((p) => p.name).join("+") || "none";
      seen.set(key, (seen.get(key) ?? 0) + 1);
      const code = toHex(readMemory(t.pid, oldAddr, 16));
      const top = applied.at(-1);
      if (!top) assert.equal(code, original, `iteration ${i}: no payload applied but old_fn was changed`);
      else {
        const f = top.funcs[0]!;
        const at = Number(BigInt(f.patchAddr) - oldAddr);
        assert.equal(
          code.slice(at * 2, at * 2 + f.patch.length),
          f.patch,
          `iteration ${i}: ${top.name} not in the code`,
        );
        assert.equal(code.slice(0, at * 2), original.slice(0, at * 2));
        // A proper stack: each applied payload's undo buffer is what lay below it.
        for (const [k, p] of applied.entries()) {
          const below = k === 0 ? original.slice(at * 2, at * 2 + 10) : applied[k - 1]!.funcs[0]!.patch;
          assert.equal(p.funcs[0]!.undo, below, `iteration ${i}: ${p.name}'s undo buffer`);
        }
      }
      const x = BigInt(i + 1);
      assert.equal(
        await callOld(t, i + 1),
        oldFormula(x) + (top ? delta[top.name]! : 0n),
        `iteration ${i}: behaviour`,
      );
    }
  } finally {
    for (const k of pool) k.proc.kill("SIGKILL");
    await Promise.all(pool.map((k) => k.exited));
  }
  // Signals queued by the workers: all delivered, but the last few may still be in flight: wait for them.
  const s = await waitUntil("the queued signals to arrive", async () => {
    const now = await status(t);
    return Math.abs(now["recv"]! - now["sent"]!) <= 2 && now;
  });
  assert.equal(s["errors"], 0, "workers saw no wrong result");
  console.log(
    `# kills ${KILLS}, journals left by a kill and recovered ${recovered}, states seen (applied stack: kills) ${[...seen].map(([k, n]) => `${k}: ${n}`).join(", ")}, ${Math.round(performance.now() - t0)} ms`,
  );
});
