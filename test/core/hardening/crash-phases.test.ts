/**
 * SIGKILL of xsplice at every journaled phase of every operation (issue #11,
 * SPEC §8): for each operation below, a victim (a library user, victim.ts) is
 * paused at its 1st, 2nd, 3rd … pause point (`XSPLICE_TEST_PAUSE_AT=@N`,
 * src/process/pause-point.ts) and SIGKILLed there, until the operation runs
 * to its end without reaching point N: every point it passes, in order, is
 * hit once. After each kill a fresh run recovers and the target passes every
 * check of `verifyTarget` (test/fixtures/hardening/rig.ts): every payload
 * wholly applied or wholly not, the function bytes exactly the ELF file's or
 * the top payload's trampoline, the hooks' state migration exactly once, no
 * stopped or traced thread, no leaked mapping or descriptor, the target's own
 * results right.
 *
 * Covered: a fresh process's first upload (registry creation, the bootstrap
 * of the inject page), upload, apply (three functions, one write each),
 * apply/revert of a payload with load/unload and pre/post hooks, stacked
 * apply, replace (reverting two payloads, one with hooks), unload, and
 * recovery itself killed at each of its points.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { command, ensure, runPaused, type Want } from "../../fixtures/hardening/drive.ts";
import {
  hardeningTarget,
  payloadSet,
  type Rig,
  startRig,
  VictimPool,
  verifyTarget,
} from "../../fixtures/hardening/rig.ts";
import { nodeCommand } from "../../helpers/bundle.ts";

const victim = fileURLToPath(new URL("../../fixtures/hardening/victim.ts", import.meta.url));

interface Scenario {
  name: string;
  want: Want;
  op: string;
  payload?: string;
  /** A kill to make before the operation (recovery scenarios: the journal it leaves is what is recovered). */
  first?: { op: string; payload: string; pause: string };
  /** Points the sweep must have killed at. */
  expect: string[];
}

const SCENARIOS: Scenario[] = [
  {
    name: "upload",
    want: { h: "CHECKED", m1: "absent", m3: "absent" },
    op: "upload",
    payload: "m1",
    expect: ["upload:stopped", "upload:journaled", "upload:mapped", "upload:written", "inject:running"],
  },
  {
    name: "apply of three functions",
    want: { m1: "CHECKED", h: "CHECKED", m3: "absent" },
    op: "apply",
    payload: "m1",
    expect: ["action:decided", "action:prehooks", "action:journaled", "action:write", "action:settled"],
  },
  {
    name: "apply with hooks",
    want: { m1: "APPLIED", h: "CHECKED" },
    op: "apply",
    payload: "h",
    expect: ["action:hook-running", "action:hook-returned", "action:write", "inject:running"],
  },
  {
    name: "revert with hooks",
    want: { m1: "CHECKED", h: "APPLIED" },
    op: "revert",
    payload: "h",
    expect: ["action:hook-running", "action:hook-returned", "action:write"],
  },
  {
    name: "revert of three functions",
    want: { h: "CHECKED", m1: "APPLIED" },
    op: "revert",
    payload: "m1",
    expect: ["action:write", "action:settled"],
  },
  {
    name: "stacked apply",
    want: { h: "CHECKED", m1: "APPLIED", m3: "CHECKED" },
    op: "apply",
    payload: "m3",
    expect: ["action:write"],
  },
  {
    name: "replace of two payloads, one with hooks",
    want: { m1: "APPLIED", h: "APPLIED", m3: "CHECKED" },
    op: "replace",
    payload: "m3",
    expect: ["action:hook-running", "action:write", "action:settled"],
  },
  {
    name: "unload",
    want: { m3: "CHECKED", m1: "CHECKED", h: "CHECKED" },
    op: "unload",
    payload: "m3",
    expect: ["unload:journaled", "unload:unmapped", "unload:committed"],
  },
  {
    name: "recovery of an apply killed half-written",
    want: { m1: "CHECKED", h: "CHECKED", m3: "absent" },
    first: { op: "apply", payload: "m1", pause: "action:write" },
    op: "open",
    expect: ["recover:restored"],
  },
  {
    name: "recovery of a revert killed after its unload hook",
    want: { m1: "CHECKED", h: "APPLIED" },
    first: { op: "revert", payload: "h", pause: "action:hook-returned" },
    op: "open",
    expect: ["recover:restored", "inject:running"],
  },
  {
    name: "recovery of an unload killed half-way",
    want: { m3: "CHECKED", m1: "CHECKED", h: "CHECKED" },
    first: { op: "unload", payload: "m3", pause: "unload:unmapped" },
    op: "open",
    expect: ["recover:unmapped"],
  },
];

describe("xsplice SIGKILLed at every journaled phase", { timeout: 600_000 }, () => {
  const exe = hardeningTarget();
  const payloads = payloadSet(exe);
  let pool: VictimPool;
  let rig: Rig | undefined;
  let kills = 0;
  const t0 = performance.now();

  before(async () => {
    pool = new VictimPool(await nodeCommand(victim));
  });
  after(async () => {
    await pool?.close();
    await rig?.t.kill();
    console.log(`# crash-phases: ${kills} kills in ${Math.round(performance.now() - t0)} ms`);
  });

  it("a fresh process's first upload (registry and inject page made), killed at each point", async () => {
    const hit = new Set<string>();
    for (let n = 1; ; n++) {
      const fresh = await startRig(exe, payloads);
      try {
        const r = await runPaused(pool, command(fresh, "upload", "h"), `@${n}`);
        if (r.kind === "finished") {
          assert.match(r.line, /^done /);
          break;
        }
        kills++;
        hit.add(r.point);
        await verifyTarget(fresh, `first upload killed at @${n} ${r.point}`);
        // The process is patchable after the kill: the upload and an apply succeed.
        ensure(fresh, { h: "APPLIED" });
        await verifyTarget(fresh, `first upload killed at @${n} ${r.point}, then applied`);
      } finally {
        await fresh.t.kill();
      }
    }
    console.log(`# first upload: points ${[...hit].join(", ")}`);
    for (const p of [
      "bootstrap:site",
      "inject-page:memfd",
      "inject-page:sized",
      "inject-page:mapped",
      "inject-page:closed",
      "inject-page:code",
      "registry:mapped",
      "registry:memfd",
      "upload:journaled",
      "upload:mapped",
      "upload:written",
    ])
      assert.ok(hit.has(p), `the sweep killed at ${p}`);
  });

  for (const sc of SCENARIOS) {
    it(`${sc.name}, killed at each point`, async () => {
      rig ??= await startRig(exe, payloads);
      const r0 = rig;
      const hit = new Set<string>();
      for (let n = 1; ; n++) {
        ensure(r0, sc.want);
        if (sc.first) {
          const f = await runPaused(pool, command(r0, sc.first.op, sc.first.payload), sc.first.pause);
          assert.equal(f.kind, "killed", `${sc.name}: the first kill happened`);
          kills++;
        }
        const r = await runPaused(pool, command(r0, sc.op, sc.payload), `@${n}`);
        if (r.kind === "finished") {
          assert.match(r.line, /^done /, `${sc.name}: the operation itself succeeds`);
          await verifyTarget(r0, `${sc.name} not killed`);
          break;
        }
        kills++;
        hit.add(r.point);
        await verifyTarget(r0, `${sc.name} killed at @${n} ${r.point}`);
      }
      console.log(`# ${sc.name}: points ${[...hit].join(", ")}`);
      for (const p of sc.expect) assert.ok(hit.has(p), `${sc.name}: the sweep killed at ${p}`);
    });
  }
});
