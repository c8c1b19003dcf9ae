/**
 * Every hook kind of SPEC §7 run in the target, in order, with the payload
 * struct's rc; a veto; a crashing load hook and a hanging pre-hook fail the
 * action cleanly (nothing patched, process alive); apply/revert hooks
 * replace the built-in patching.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { after, before, test } from "node:test";
import { action, get, upload } from "../../../src/core/api.ts";
import { XspliceError } from "../../../src/errors.ts";
import { readMemory, writeMemory } from "../../../src/process/memory.ts";
import { startTarget, symbolAddress, type Target } from "../../helpers/target.ts";
import { actionPayload, actionsTarget } from "./_hand.ts";
import { callOld, oldFormula, status } from "./_target.ts";

let exe: string;
let t: Target;
let events: bigint;
let oldAddr: bigint;

before(async () => {
  exe = actionsTarget(true);
  t = await startTarget(exe, ["2"]);
  events = symbolAddress(t.pid, exe, "hook_events");
  oldAddr = symbolAddress(t.pid, exe, "old_fn");
});
after(async () => {
  await t.kill();
});

function readEvents(): string {
  const b = readMemory(t.pid, events, 8);
  return new DataView(b.buffer, b.byteOffset, 8).getBigInt64(0, true).toString();
}
function resetEvents(): void {
  writeMemory(t.pid, events, new Uint8Array(8));
}
async function load(name: string, cflags: string[] = []): Promise<void> {
  await upload(t.pid, name, new Uint8Array(readFileSync(actionPayload("hooks.c", exe, { cflags }))));
}
function fails(errno: string, re?: RegExp) {
  return (e: unknown) =>
    e instanceof XspliceError && e.errno === errno && (re === undefined || re.test(e.message));
}

test("apply: preapply, load, postapply(rc 0); revert: prerevert, unload, postrevert", async () => {
  resetEvents();
  await load("h");
  await action(t.pid, "h", "APPLY");
  assert.equal(readEvents(), "314");
  assert.equal(await callOld(t, 1), oldFormula(1n) + 1000n);
  await action(t.pid, "h", "REVERT");
  assert.equal(readEvents(), "314526");
  await action(t.pid, "h", "UNLOAD");
});

test("a preapply veto becomes the rc; no stop, no post-hook, nothing patched", async () => {
  resetEvents();
  const code = readMemory(t.pid, oldAddr, 32);
  await load("veto", ["-DPRE_RET=-1"]);
  await assert.rejects(action(t.pid, "veto", "APPLY"), fails("EPERM", /preapply hook vetoed/));
  assert.deepEqual(await get(t.pid, "veto"), { name: "veto", state: "CHECKED", rc: -1 });
  assert.equal(readEvents(), "3");
  assert.deepEqual(readMemory(t.pid, oldAddr, 32), code);
  await action(t.pid, "veto", "UNLOAD");
});

test("a crashing load hook: EFAULT, nothing patched, postapply sees the error, process alive", async () => {
  resetEvents();
  const code = readMemory(t.pid, oldAddr, 32);
  await load("crash", ["-DCRASH_LOAD"]);
  await assert.rejects(action(t.pid, "crash", "APPLY"), fails("EFAULT", /load hook failed/));
  assert.equal((await get(t.pid, "crash")).rc, -14);
  assert.equal(readEvents(), "319");
  assert.deepEqual(readMemory(t.pid, oldAddr, 32), code);
  assert.equal(await callOld(t, 2), oldFormula(2n));
  assert.equal((await status(t))["errors"], 0);
  await action(t.pid, "crash", "UNLOAD");
});

test("a hanging preapply hook: ETIMEDOUT within the timeout, nothing patched, process alive", async () => {
  resetEvents();
  const code = readMemory(t.pid, oldAddr, 32);
  await load("hang", ["-DHANG_PRE"]);
  await assert.rejects(
    action(t.pid, "hang", "APPLY", { timeoutMs: 50 }),
    fails("ETIMEDOUT", /preapply hook failed/),
  );
  // gcc may sink the hook's store into the endless loop; what matters: no load or post-hook ran.
  assert.match(readEvents(), /^3?$|^0$/);
  assert.deepEqual(readMemory(t.pid, oldAddr, 32), code);
  assert.equal(await callOld(t, 2), oldFormula(2n));
  await action(t.pid, "hang", "UNLOAD");
});

test("apply/revert hooks replace the built-in patching step", async () => {
  resetEvents();
  const code = readMemory(t.pid, oldAddr, 32);
  await load("ah", ["-DACTION_HOOKS"]);
  await action(t.pid, "ah", "APPLY");
  assert.equal(readEvents(), "3174");
  assert.equal((await get(t.pid, "ah")).state, "APPLIED");
  assert.deepEqual(readMemory(t.pid, oldAddr, 32), code, "the apply hook wrote nothing");
  await action(t.pid, "ah", "REVERT");
  assert.equal(readEvents(), "31745826");
  await action(t.pid, "ah", "UNLOAD");
});
