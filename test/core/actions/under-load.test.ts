/**
 * Actions on a saturated host (issue #13): as many busy loops as cores × 4
 * (each bounded in time, killed at the end), a target whose workers call the
 * patched function flat out and check every result, and 100 actions
 * alternating APPLY and REVERT through `performAction` with a retry budget,
 * as the CLI's `--retry-for` runs them. Every action must end in the state
 * asked for, and the workers must never see a wrong result. How long the
 * stops took is the benchmark's business (bench/stop-under-load.bench.ts);
 * this test only counts the tries.
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { availableParallelism } from "node:os";
import { after, test } from "node:test";
import { upload } from "../../../src/core/api.ts";
import { performAction } from "../../../src/core/execute.ts";
import { actionPayload } from "./_hand.ts";
import { actionsTargetForFile, callOld, oldFormula, status } from "./_target.ts";

const ACTIONS = 100;
const t = actionsTargetForFile(3);
const hogs: ChildProcess[] = [];

/** Kill every hog: each runs in a process group of its own (timeout and its shell). */
function killHogs(): void {
  for (const h of hogs.splice(0)) {
    try {
      if (h.pid !== undefined) process.kill(-h.pid, "SIGKILL");
    } catch {
      // gone already
    }
  }
}

after(killHogs);

test(`${ACTIONS} actions under ${availableParallelism() * 4} busy loops all end as asked, workers always right`, {
  timeout: 300_000,
}, async () => {
  await upload(t.pid, "load", new Uint8Array(readFileSync(actionPayload("fix.c", t.exe))));
  const before = await status(t);
  // Each hog ends by itself after 240 s, should this test die without its after().
  for (let i = 0; i < availableParallelism() * 4; i++)
    hogs.push(
      spawn("timeout", ["240", "/bin/sh", "-c", "while :; do :; done"], { stdio: "ignore", detached: true }),
    );
  let tries = 0;
  let retried = 0;
  for (let i = 0; i < ACTIONS; i++) {
    const cmd = i % 2 === 0 ? "APPLY" : "REVERT";
    const r = performAction(t.pid, "load", cmd, { timeoutMs: 100, retryForMs: 30_000 });
    assert.equal(r.state, cmd === "APPLY" ? "APPLIED" : "CHECKED", `action ${i}`);
    tries += r.tries ?? 1;
    if ((r.tries ?? 1) > 1) retried++;
    // The workers must get to run the new code between actions.
    if (i % 10 === 9) await new Promise((res) => setTimeout(res, 1));
  }
  killHogs();
  assert.equal(await callOld(t, 7), oldFormula(7n), "reverted at the end: the original code");
  const s = await status(t);
  assert.equal(s["errors"], 0, "no worker saw a wrong result");
  assert.ok(s["new"]! > before["new"]!, "the workers ran the replacement meanwhile");
  console.log(`# ${ACTIONS} actions, ${tries} tries, ${retried} retried`);
});
