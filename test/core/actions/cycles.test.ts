/**
 * 10,000 apply/revert cycles (5,000 of each) on a multi-threaded target whose
 * workers call the patched function flat out and check every result, and
 * queue real-time signals to the process: no wrong result, no lost signal,
 * the code bytes exact at the end. One session is held throughout (the seize
 * is the expensive part, and a tool doing many actions would reuse it too).
 *
 * XSPLICE_CYCLES sets the number of actions (default 10,000).
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { after, before, test } from "node:test";
import { upload } from "../../../src/core/api.ts";
import { runAction } from "../../../src/core/execute.ts";
import { openTarget } from "../../../src/core/session.ts";
import { readMemory } from "../../../src/process/memory.ts";
import { startTarget, symbolAddress, type Target } from "../../helpers/target.ts";
import { waitUntil } from "../../helpers/wait.ts";
import { actionPayload, actionsTarget } from "./_hand.ts";
import { callOld, oldFormula, status } from "./_target.ts";

const CYCLES = Number(process.env["XSPLICE_CYCLES"] ?? 10_000);
let exe: string;
let t: Target;

before(async () => {
  exe = actionsTarget(true);
  t = await startTarget(exe, ["3"]);
});
after(async () => {
  await t.kill();
});

test(`${CYCLES} apply/revert actions with workers checking every result`, async () => {
  await upload(t.pid, "cyc", new Uint8Array(readFileSync(actionPayload("fix.c", exe))));
  const oldAddr = symbolAddress(t.pid, exe, "old_fn");
  const code = readMemory(t.pid, oldAddr, 32);
  const before = await status(t);
  const windows: number[] = [];
  let attempts = 0;
  const session = openTarget(t.pid);
  const t0 = performance.now();
  try {
    session.run();
    for (let i = 0; i < CYCLES; i++) {
      const r = runAction(session, "cyc", i % 2 === 0 ? "APPLY" : "REVERT", { timeoutMs: 500 });
      windows.push(r.stopWindowMs);
      attempts += r.attempts;
      // Let the workers run between actions, as in real life (and make the signal check meaningful).
      if (i % 500 === 499) await new Promise((res) => setTimeout(res, 5));
    }
  } finally {
    session.close();
  }
  const took = performance.now() - t0;
  assert.deepEqual(readMemory(t.pid, oldAddr, 32), code, "reverted code equals the original exactly");
  assert.equal(await callOld(t, 21), oldFormula(21n));
  // Signals still in flight (a worker counts after sigqueue returns) arrive: wait for them, not a time.
  const s = await waitUntil("the queued signals to arrive", async () => {
    const now = await status(t);
    return Math.abs(now["recv"]! - now["sent"]!) <= 3 && now;
  });
  assert.equal(s["errors"], 0, "no worker saw a wrong result");
  assert.ok(s["new"]! > before["new"]!, "the workers ran the replacement");
  assert.ok(s["calls"]! > before["calls"]!);
  assert.ok(s["sent"]! > before["sent"]!, "signals were queued meanwhile");
  assert.ok(
    Math.abs(s["recv"]! - s["sent"]!) <= 3,
    `(a worker counts after sigqueue returns) sent ${s["sent"]} recv ${s["recv"]}`,
  );
  windows.sort((a, b) => a - b);
  console.log(
    `# ${CYCLES} actions in ${(took / 1000).toFixed(1)} s, ${attempts} stops; stop window median ${windows[windows.length >> 1]!.toFixed(3)} ms, p95 ${windows[Math.floor(windows.length * 0.95)]!.toFixed(3)} ms`,
  );
});
