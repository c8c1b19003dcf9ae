/**
 * SPEC §5: "GET must report EAGAIN to other observers while [an action]
 * runs." One `xsplice load` process applies a payload whose load hook keeps
 * the stop open (test/fixtures/upload/slow-load-hook.c, released by the test
 * through /proc/PID/mem); meanwhile this process polls the registry and other
 * `xsplice get --json` processes ask too. They must see rc -11 (EAGAIN) with
 * the state still CHECKED, and APPLIED rc 0 once the action is done.
 *
 * Load hooks run inside the safe stop, after the registry commit that marks
 * the payload -EAGAIN with its journal (src/core/execute.ts); each hook call
 * is bounded by the action's own timeout (`runHooks(..., timeoutMs)`), hence
 * `--timeout 35000` for a hook that may wait up to 30 s. Nothing here depends
 * on how fast the machine starts a process: the hook waits for the test.
 */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { readTargetRegistry } from "../../../src/core/registry/remote.ts";
import { readMemory, writeMemory } from "../../../src/process/memory.ts";
import { startTarget, type Target } from "../../helpers/target.ts";
import { WAIT_MS } from "../../helpers/wait.ts";
import { cli, payload, source, TARGET } from "../upload/_fixtures.ts";

let t: Target;
before(async () => {
  t = await startTarget(TARGET);
});
after(async () => {
  await t?.kill();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The payload's state and rc as this (other) process reads them from the registry, if it is there. */
function peek(pid: number, name: string): { state: string; rc: number } | undefined {
  const snap = readTargetRegistry(pid);
  const p = snap?.state.payloads.find((x) => x.name === name);
  return p && { state: p.state, rc: p.rc };
}

async function compute(v: number): Promise<number> {
  const from = t.lines.length;
  t.send(`compute ${v}`);
  return Number((await t.waitFor(/^compute /, { from })).split(" ")[1]);
}

test("GET reports rc -EAGAIN to other processes while a load hook runs, APPLIED rc 0 after", async () => {
  const file = payload([source("slow-load-hook.c")]);
  const before0 = await compute(3);
  const load = cli(["load", String(t.pid), file, "--name", "slow", "--timeout", "35000", "--json"]);
  let done = false;
  void load.then(() => {
    done = true;
  });

  // This process is one observer: poll until the action is in progress.
  const seen: string[] = [];
  const note = (s: { state: string; rc: number } | undefined) => {
    const k = s ? `${s.state}/${s.rc}` : "absent";
    if (seen.at(-1) !== k) seen.push(k);
  };
  const t0 = performance.now();
  while (!done && peek(t.pid, "slow")?.rc !== -11 && performance.now() - t0 < WAIT_MS) {
    note(peek(t.pid, "slow"));
    await sleep(2);
  }
  note(peek(t.pid, "slow"));
  assert.equal(seen.at(-1), "CHECKED/-11", `in progress seen by this process; saw ${seen.join(" ")}`);

  // `xsplice get` processes are the others: ask until one answers (the hook waits up to 30 s).
  const answers: unknown[] = [];
  let cliSaw = false;
  while (!done && !cliSaw) {
    const g = await cli(["get", String(t.pid), "slow", "--json"]);
    assert.equal(g.status, 0, g.error);
    answers.push(g.json);
    cliSaw = (g.json as { rc: number }).rc === -11;
  }
  assert.ok(cliSaw, `xsplice get saw rc -11: ${JSON.stringify(answers)}`);
  assert.deepEqual(answers.at(-1), { name: "slow", state: "CHECKED", rc: -11 });

  // Let the hook return: the action completes.
  const rec = readTargetRegistry(t.pid)!.state.payloads.find((p) => p.name === "slow")!;
  const release = BigInt(rec.exports["slow_release"]!);
  writeMemory(t.pid, release, new Uint8Array([1, 0, 0, 0]));
  const r = await load;
  assert.equal(r.status, 0, r.error);
  assert.equal((r.json as { state: string }).state, "APPLIED");
  const waited = readMemory(t.pid, BigInt(rec.exports["slow_waited"]!), 4);
  const naps = new DataView(waited.buffer, waited.byteOffset, 4).getInt32(0, true);
  assert.ok(naps > 0 && naps < 3000, `the hook waited for the release (${naps} naps), not the 30 s cap`);

  const g = await cli(["get", String(t.pid), "slow", "--json"]);
  assert.deepEqual(g.json, { name: "slow", state: "APPLIED", rc: 0 });
  note(peek(t.pid, "slow"));
  assert.equal(seen.at(-1), "APPLIED/0");
  assert.ok(!seen.includes("APPLIED/-11"), `never APPLIED while in progress: ${seen.join(" ")}`);
  assert.equal(await compute(3), before0 + 500, "the replacement runs");
});
