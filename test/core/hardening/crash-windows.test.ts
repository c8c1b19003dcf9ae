/**
 * The crash windows that remain (docs/safety-model.md, "What remains"),
 * measured and printed (`# window ...` lines); timings are reported, never
 * asserted. What is asserted is that each measurement measured what it says:
 * the action succeeded, the kill landed where it should, the target carried on.
 *
 * - half-applied: the part of an action's stop in which a kill leaves some
 *   writes made and the outcome not committed (the `act` stage: writes and the
 *   commit), for a payload of three functions a page apart;
 * - bootstrap: how much longer the first upload of a fresh process keeps it
 *   stopped than a later one (the inject page's bootstrap and the registry's
 *   creation, the steps whose kill leaves leftovers for the next run);
 * - stalled thread: after a kill while a thread runs injected code, how long
 *   the target's main thread is stalled before the stub restores it by itself.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { performAction } from "../../../src/core/execute.ts";
import { uploadPayload } from "../../../src/core/loader.ts";
import { command, ensure, runPaused } from "../../fixtures/hardening/drive.ts";
import {
  callTarget,
  hardeningTarget,
  payloadSet,
  type Rig,
  startRig,
  VictimPool,
  verifyTarget,
} from "../../fixtures/hardening/rig.ts";
import { nodeCommand } from "../../helpers/bundle.ts";

const victim = fileURLToPath(new URL("../../fixtures/hardening/victim.ts", import.meta.url));

function stats(xs: number[]): string {
  const s = [...xs].sort((a, b) => a - b);
  const q = (p: number) => s[Math.min(s.length - 1, Math.floor(p * s.length))]!.toFixed(3);
  return `median ${q(0.5)} ms, p90 ${q(0.9)} ms, max ${s.at(-1)!.toFixed(3)} ms (n=${s.length})`;
}

describe("the crash windows that remain, measured", { timeout: 600_000 }, () => {
  const exe = hardeningTarget();
  const payloads = payloadSet(exe);
  let pool: VictimPool;
  const rigs: Rig[] = [];

  before(async () => {
    pool = new VictimPool(await nodeCommand(victim));
  });
  after(async () => {
    await pool?.close();
    for (const r of rigs) await r.t.kill();
  });

  it("half-applied: the writes-and-commit part of an apply's stop (three functions)", async () => {
    const rig = await startRig(exe, payloads);
    rigs.push(rig);
    ensure(rig, { m1: "CHECKED" });
    const apply: number[] = [];
    const revert: number[] = [];
    for (let i = 0; i < 100; i++) {
      const a = performAction(rig.t.pid, "m1", "APPLY");
      assert.equal(a.state, "APPLIED");
      apply.push(a.stopStages!.act);
      const r = performAction(rig.t.pid, "m1", "REVERT");
      assert.equal(r.state, "CHECKED");
      revert.push(r.stopStages!.act);
    }
    await verifyTarget(rig, "after 100 apply/revert cycles");
    console.log(`# window half-applied (apply, 3 writes + commit): ${stats(apply)}`);
    console.log(`# window half-applied (revert, 3 writes + commit): ${stats(revert)}`);
  });

  it("bootstrap: the first upload's extra stop (inject page and registry made)", async () => {
    const extra: number[] = [];
    for (let i = 0; i < 10; i++) {
      const rig = await startRig(exe, payloads);
      try {
        const first = uploadPayload(rig.t.pid, "m1", rig.bytes("m1")).timings.stopped!;
        const second = uploadPayload(rig.t.pid, "m3", rig.bytes("m3")).timings.stopped!;
        extra.push(first - second);
        await verifyTarget(rig, `fresh process ${i}`);
      } finally {
        await rig.t.kill();
      }
    }
    console.log(`# window bootstrap (first upload's stop minus a later one's): ${stats(extra)}`);
  });

  it("stalled thread: a kill while the main thread runs a pre-apply hook", async () => {
    const rig = await startRig(exe, payloads);
    rigs.push(rig);
    const stall: number[] = [];
    for (let i = 0; i < 5; i++) {
      ensure(rig, { h: "CHECKED" });
      const r = await runPaused(pool, command(rig, "apply", "h"), "inject:running");
      assert.deepEqual(r, { kind: "killed", point: "inject:running" });
      const t0 = performance.now();
      const [f1] = await callTarget(rig.t, 5); // the main thread answers once the stub restored it
      stall.push(performance.now() - t0);
      assert.equal(f1, 5n * 31n + 7n);
      await verifyTarget(rig, `stall round ${i}`);
    }
    console.log(
      `# window stalled thread (kill in injected code to the main thread answering): ${stats(stall)}`,
    );
  });
});
