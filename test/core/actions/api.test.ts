/**
 * APPLY / REVERT / REPLACE through the library API on a real multi-threaded
 * target with payloads built by `buildPayload`: every row of the SPEC §5
 * table, each error, stacking three payloads, replace, NOP entries,
 * expectations, the re-apply rule, and the SPEC §12 warning.
 */
import assert from "node:assert/strict";
import { copyFileSync, readFileSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { after, before, test } from "node:test";
import { action, get, upload } from "../../../src/core/api.ts";
import { performAction } from "../../../src/core/execute.ts";
import { XspliceError } from "../../../src/errors.ts";
import { readPayload } from "../../../src/payload/index.ts";
import { readMemory } from "../../../src/process/memory.ts";
import { tool } from "../../helpers/cc.ts";
import { buildFixturePayload } from "../../helpers/payload-fixtures.ts";
import { startTarget, symbolAddress, type Target } from "../../helpers/target.ts";
import { actionPayload, actionsTarget, buildIdOf, symbolSize } from "./_hand.ts";
import { callNop, callOld, oldFormula, status } from "./_target.ts";

let exe: string;
let t: Target;
let oldAddr: bigint;

before(async () => {
  exe = actionsTarget(true);
  t = await startTarget(exe, ["2"]);
  oldAddr = symbolAddress(t.pid, exe, "old_fn");
});
after(async () => {
  await t.kill();
});

function bytesOf(file: string): Uint8Array {
  return new Uint8Array(readFileSync(file));
}

async function rejects(p: Promise<unknown> | (() => unknown), errno: string, re?: RegExp): Promise<void> {
  await assert.rejects(
    async () => (typeof p === "function" ? p() : p),
    (e: unknown) =>
      e instanceof XspliceError && e.errno === errno && (re === undefined || re.test(e.message)),
  );
}

test("SPEC §5 table: APPLY, APPLY again, UNLOAD of APPLIED, REVERT, REVERT of CHECKED, UNLOAD", async () => {
  const code = readMemory(t.pid, oldAddr, 32);
  await upload(t.pid, "row", bytesOf(actionPayload("fix.c", exe)));
  assert.deepEqual(await get(t.pid, "row"), { name: "row", state: "CHECKED", rc: 0 });
  const r = performAction(t.pid, "row", "APPLY");
  assert.equal(r.kind, "apply");
  assert.deepEqual(r.warnings, [], "target built with -flive-patching=inline-clone");
  assert.deepEqual(await get(t.pid, "row"), { name: "row", state: "APPLIED", rc: 0 });
  assert.equal(await callOld(t, 3), oldFormula(3n) + 1000n);
  assert.equal(performAction(t.pid, "row", "APPLY").kind, "noop");
  await rejects(action(t.pid, "row", "UNLOAD"), "EINVAL");
  await action(t.pid, "row", "REVERT");
  assert.deepEqual(await get(t.pid, "row"), { name: "row", state: "CHECKED", rc: 0 });
  assert.deepEqual(readMemory(t.pid, oldAddr, 32), code);
  await rejects(action(t.pid, "row", "REVERT"), "EINVAL");
  // Without writable data of its own it can be applied again after a revert.
  await action(t.pid, "row", "APPLY");
  await action(t.pid, "row", "REVERT");
  await action(t.pid, "row", "UNLOAD");
  await rejects(get(t.pid, "row"), "ENOENT");
  await rejects(action(t.pid, "nope", "APPLY"), "ENOENT");
  assert.equal((await status(t))["errors"], 0);
});

test("stacking three payloads on one function: LIFO reverts only, exact bytes at the end", async () => {
  const code = readMemory(t.pid, oldAddr, 32);
  const p1 = actionPayload("fix.c", exe);
  const p2 = actionPayload("fix.c", exe, { depends: p1, cflags: ["-DDELTA=2000"] });
  const p3 = actionPayload("fix.c", exe, { depends: p2, cflags: ["-DDELTA=3000"] });
  await upload(t.pid, "s1", bytesOf(p1));
  await upload(t.pid, "s2", bytesOf(p2));
  await upload(t.pid, "s3", bytesOf(p3));
  // SPEC §4: s2 depends on s1, so it cannot go first (EINVAL) unless NODEPS.
  await rejects(action(t.pid, "s2", "APPLY"), "EINVAL", /depends on build-id/);
  for (const [n, d] of [
    ["s1", 1000n],
    ["s2", 2000n],
    ["s3", 3000n],
  ] as const) {
    await action(t.pid, n, "APPLY");
    assert.equal(await callOld(t, 11), oldFormula(11n) + d);
  }
  await rejects(action(t.pid, "s1", "REVERT"), "EBUSY", /revert 's3' first/);
  await rejects(action(t.pid, "s2", "REVERT"), "EBUSY");
  await action(t.pid, "s3", "REVERT");
  assert.equal(await callOld(t, 11), oldFormula(11n) + 2000n);
  await action(t.pid, "s2", "REVERT");
  assert.equal(await callOld(t, 11), oldFormula(11n) + 1000n);
  await action(t.pid, "s1", "REVERT");
  assert.deepEqual(readMemory(t.pid, oldAddr, 32), code);
  for (const n of ["s1", "s2", "s3"]) await action(t.pid, n, "UNLOAD");
  assert.equal((await status(t))["errors"], 0);
});

test("NODEPS applies a payload whose dependency is not the top", async () => {
  const p1 = actionPayload("fix.c", exe);
  const p2 = actionPayload("fix.c", exe, { depends: p1, cflags: ["-DDELTA=2000"] });
  await upload(t.pid, "nd", bytesOf(p2));
  await rejects(action(t.pid, "nd", "APPLY"), "EINVAL");
  await action(t.pid, "nd", "APPLY", { nodeps: true });
  assert.equal(await callOld(t, 4), oldFormula(4n) + 2000n);
  await action(t.pid, "nd", "REVERT");
  await action(t.pid, "nd", "UNLOAD");
});

test("REPLACE: every applied payload of the object reverted and the new one applied in one stop", async () => {
  const code = readMemory(t.pid, oldAddr, 32);
  const p1 = actionPayload("fix.c", exe);
  const p2 = actionPayload("fix.c", exe, { depends: p1, cflags: ["-DDELTA=2000"] });
  const p3 = actionPayload("fix.c", exe, { cflags: ["-DDELTA=3000"] });
  await upload(t.pid, "r1", bytesOf(p1));
  await upload(t.pid, "r2", bytesOf(p2));
  await upload(t.pid, "r3", bytesOf(p3));
  await action(t.pid, "r1", "APPLY");
  await action(t.pid, "r2", "APPLY");
  const r = performAction(t.pid, "r3", "REPLACE");
  assert.equal(r.kind, "replace");
  assert.equal(r.state, "APPLIED");
  assert.equal((await get(t.pid, "r1")).state, "CHECKED");
  assert.equal((await get(t.pid, "r2")).state, "CHECKED");
  assert.equal(await callOld(t, 6), oldFormula(6n) + 3000n);
  // r3's undo buffer is the original code: reverting it restores the bytes exactly.
  await rejects(action(t.pid, "r3", "REPLACE"), "EINVAL", /already applied/);
  await action(t.pid, "r3", "REVERT");
  assert.deepEqual(readMemory(t.pid, oldAddr, 32), code);
  // REPLACE needs .xsplice.depends = the target object: r2 depends on r1.
  await rejects(action(t.pid, "r2", "REPLACE"), "EINVAL", /REPLACE needs/);
  for (const n of ["r1", "r2", "r3"]) await action(t.pid, n, "UNLOAD");
  assert.equal((await status(t))["errors"], 0);
});

test("a payload with writable data of its own cannot be re-applied after a revert (EINVAL)", async () => {
  await upload(t.pid, "wd", bytesOf(actionPayload("fix-data.c", exe)));
  await action(t.pid, "wd", "APPLY");
  assert.equal(await callOld(t, 2), oldFormula(2n) + 1000n);
  await action(t.pid, "wd", "REVERT");
  await rejects(action(t.pid, "wd", "APPLY"), "EINVAL", /unload and upload it again/);
  await action(t.pid, "wd", "UNLOAD");
});

test("NOP entry: the NOPed instruction stops running; revert restores it", async () => {
  const nopAddr = symbolAddress(t.pid, exe, "nop_fn");
  const code = readMemory(t.pid, nopAddr, 12);
  const c0 = (await callNop(t, 5)).counter;
  assert.equal((await callNop(t, 5)).counter, c0 + 1);
  await upload(t.pid, "nop", bytesOf(actionPayload("nop.c", exe)));
  await action(t.pid, "nop", "APPLY");
  const patched = readMemory(t.pid, nopAddr, 12);
  assert.notDeepEqual(patched.subarray(0, 8), code.subarray(0, 8));
  assert.deepEqual(patched.subarray(8), code.subarray(8));
  const after1 = await callNop(t, 7);
  assert.equal(after1.r, 7);
  assert.equal(after1.counter, c0 + 1, "the increment is NOPed out");
  await action(t.pid, "nop", "REVERT");
  assert.deepEqual(readMemory(t.pid, nopAddr, 12), code);
  assert.equal((await callNop(t, 7)).counter, c0 + 2);
  await action(t.pid, "nop", "UNLOAD");
});

test("livepatch-format expectations: matching bytes apply, others EINVAL with nothing changed", async () => {
  const code = readMemory(t.pid, oldAddr, 32);
  const target = new Uint8Array(Buffer.from(buildIdOf(exe), "hex"));
  const size = symbolSize(exe, "old_fn");
  const lp = (name: string, bytes: Uint8Array) =>
    buildFixturePayload({
      source: "actions/lp-expect.c",
      format: "livepatch",
      target,
      name,
      cflags: [
        `-DOLD_SIZE=${size}`,
        `-DEXPECT_LEN=${bytes.length}`,
        `-DEXPECT_BYTES=${[...bytes].map((b) => `0x${b.toString(16)}`).join(",")}`,
      ],
    });
  const good = lp("lp-good", code.subarray(0, 6));
  const badBytes = code.slice(0, 6);
  badBytes[5] = badBytes[5]! ^ 0xff;
  const bad = lp("lp-bad", badBytes);
  await upload(t.pid, "lp-bad", bytesOf(bad));
  await rejects(action(t.pid, "lp-bad", "APPLY"), "EINVAL", /expectation failed for old_fn/);
  assert.deepEqual(await get(t.pid, "lp-bad"), { name: "lp-bad", state: "CHECKED", rc: -22 });
  assert.deepEqual(readMemory(t.pid, oldAddr, 32), code);
  await action(t.pid, "lp-bad", "UNLOAD"); // both export lp_fn and lp_funcs
  await upload(t.pid, "lp-good", bytesOf(good));
  await action(t.pid, "lp-good", "APPLY");
  assert.equal(await callOld(t, 8), oldFormula(8n) + 1000n);
  await action(t.pid, "lp-good", "REVERT");
  assert.deepEqual(readMemory(t.pid, oldAddr, 32), code);
  await action(t.pid, "lp-good", "UNLOAD");
});

test("SPEC §12: a target built without -flive-patching=inline-clone gives a warning, not a failure", async () => {
  const plain = actionsTarget(true, false);
  const t2 = await startTarget(plain, ["1"]);
  try {
    await upload(t2.pid, "w", bytesOf(actionPayload("fix.c", plain)));
    const r = performAction(t2.pid, "w", "APPLY");
    assert.equal(r.state, "APPLIED");
    assert.equal(r.warnings.length, 1);
    assert.match(r.warnings[0]!, /was not built with -flive-patching=inline-clone/);
  } finally {
    await t2.kill();
  }
});

test("SPEC §12: a stripped target built with -flive-patching gives no warning when the payload's build saw the flag", async (t) => {
  // strip -g drops the DWARF (and with it the producer strings) but keeps the build-id and .symtab.
  const stripped = join(dirname(exe), `${basename(exe)}-stripped-g`);
  copyFileSync(exe, stripped);
  tool("strip", ["-g", stripped]);
  const withFact = actionPayload("fix.c", exe);
  assert.equal(readPayload(readFileSync(withFact)).metadata["target-flags"], "-flive-patching=inline-clone");
  const withoutFact = actionPayload("fix.c", stripped);
  assert.equal(readPayload(readFileSync(withoutFact)).metadata["target-flags"], undefined);
  const t2 = await startTarget(stripped, ["1"]);
  t.after(() => t2.kill());
  await upload(t2.pid, "fact", bytesOf(withFact));
  assert.deepEqual(performAction(t2.pid, "fact", "APPLY").warnings, []);
  performAction(t2.pid, "fact", "REVERT");
  await upload(t2.pid, "nofact", bytesOf(withoutFact));
  const r = performAction(t2.pid, "nofact", "APPLY");
  assert.equal(r.warnings.length, 1);
  assert.match(r.warnings[0]!, /no DWARF producer strings/);
});
