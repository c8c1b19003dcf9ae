/**
 * The executor against a real multi-threaded target with hand-made records
 * (old_fn → new_fn inside the target itself): trampoline bytes after endbr64,
 * behaviour, exact revert, stacking, EBUSY for a parked or spinning thread
 * with nothing changed, GET's EAGAIN, and the stop window.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { runAction } from "../../../src/core/execute.ts";
import { openTarget, type TargetSession } from "../../../src/core/session.ts";
import { XspliceError } from "../../../src/errors.ts";
import { hexBytes as toHex } from "../../../src/hex.ts";
import { readMemory } from "../../../src/process/memory.ts";
import { addRecord, handFunc, handRecord } from "./_hand.ts";
import { actionsTargetForFile, callOld, oldFormula, status } from "./_target.ts";

const t = actionsTargetForFile(2);

function withSession<T>(fn: (s: TargetSession) => T): T {
  const s = openTarget(t.pid, { recover: false });
  try {
    return fn(s);
  } finally {
    s.close();
  }
}

test("apply writes e9 rel32 after endbr64, behaviour changes, revert restores the exact bytes", async () => {
  const f = handFunc(t.pid, t.exe, "old_fn", "new_fn");
  const oldAddr = BigInt(f.oldAddr);
  const original = readMemory(t.pid, oldAddr, 16);
  assert.equal(toHex(original.subarray(0, 4)), "f30f1efa", "CET build starts with endbr64");
  assert.equal(BigInt(f.patchAddr), oldAddr + 4n);
  withSession((s) => addRecord(s, handRecord(t.exe, "fix-1", [f])));
  assert.equal(await callOld(t, 5), oldFormula(5n));

  const res = withSession((s) => runAction(s, "fix-1", "APPLY"));
  assert.equal(res.state, "APPLIED");
  // How long the window was is the benchmark's business (bench/apply.bench.ts); here only that it was measured.
  assert.ok(res.stopWindowMs > 0, `stop window ${res.stopWindowMs}`);
  const patched = readMemory(t.pid, oldAddr, 16);
  assert.equal(toHex(patched.subarray(0, 4)), "f30f1efa", "endbr64 kept");
  assert.equal(patched[4], 0xe9);
  const rel = new DataView(patched.buffer, patched.byteOffset + 5, 4).getInt32(0, true);
  assert.equal(oldAddr + 4n + 5n + BigInt(rel), BigInt(f.newAddr));
  assert.equal(await callOld(t, 5), oldFormula(5n) + 1000n);

  withSession((s) => {
    assert.equal(s.state.payloads[0]!.funcs[0]!.undo, toHex(original.subarray(4, 9)));
    assert.equal(s.state.journal, undefined);
    runAction(s, "fix-1", "REVERT");
  });
  assert.deepEqual(readMemory(t.pid, oldAddr, 16), original);
  assert.equal(await callOld(t, 5), oldFormula(5n));
  const st = await status(t);
  assert.equal(st["errors"], 0);
  assert.ok(st["new"]! > 0 || st["old"]! > 0);
});

test("stacking: the second payload's undo holds the first trampoline; reverts unwind LIFO", async () => {
  const f1 = handFunc(t.pid, t.exe, "old_fn", "new_fn");
  const f2 = handFunc(t.pid, t.exe, "old_fn", "new_fn2");
  const oldAddr = BigInt(f1.oldAddr);
  const original = readMemory(t.pid, oldAddr, 16);
  withSession((s) => {
    const a = handRecord(t.exe, "stack-a", [f1]);
    addRecord(s, a);
    addRecord(s, handRecord(t.exe, "stack-b", [f2], { depends: a.buildId }));
    runAction(s, "stack-a", "APPLY");
    runAction(s, "stack-b", "APPLY");
    const b = s.state.payloads.find((p) => p.name === "stack-b")!;
    assert.equal(b.funcs[0]!.undo, f1.patch);
    assert.throws(
      () => runAction(s, "stack-a", "REVERT"),
      (e: unknown) => e instanceof XspliceError && e.errno === "EBUSY",
    );
  });
  assert.equal(await callOld(t, 9), oldFormula(9n) + 2000n);
  withSession((s) => runAction(s, "stack-b", "REVERT"));
  assert.equal(await callOld(t, 9), oldFormula(9n) + 1000n);
  withSession((s) => runAction(s, "stack-a", "REVERT"));
  assert.deepEqual(readMemory(t.pid, oldAddr, 16), original);
  assert.equal(await callOld(t, 9), oldFormula(9n));
});

test("a thread parked inside the function: EBUSY naming function and thread within the timeout, nothing changed", async () => {
  const f = handFunc(t.pid, t.exe, "parked_fn", "new_fn");
  const addr = BigInt(f.oldAddr);
  const before = readMemory(t.pid, addr, 64);
  const from = t.lines.length;
  t.send("park");
  await t.waitFor(/^parked$/, { from });
  withSession((s) => {
    addRecord(s, handRecord(t.exe, "park-fix", [f]));
    const state = s.state;
    assert.throws(
      () => runAction(s, "park-fix", "APPLY", { timeoutMs: 30 }),
      (e: unknown) =>
        e instanceof XspliceError &&
        e.errno === "EBUSY" &&
        /parked_fn is on the stack of thread \d+ \(30 ms\)/.test(e.message),
    );
    const p = s.state.payloads.find((x) => x.name === "park-fix")!;
    assert.equal(p.state, "CHECKED");
    assert.equal(p.rc, -16);
    assert.equal(s.state.journal, undefined);
    assert.equal(s.state.payloads.length, state.payloads.length);
  });
  assert.deepEqual(readMemory(t.pid, addr, 64), before);
});

test("a thread spinning inside the function: EBUSY at its pc", async () => {
  const f = handFunc(t.pid, t.exe, "spin_fn", "new_fn");
  const before = readMemory(t.pid, BigInt(f.oldAddr), 34);
  const from = t.lines.length;
  t.send("spin");
  await t.waitFor(/^spinning$/, { from });
  withSession((s) => {
    addRecord(s, handRecord(t.exe, "spin-fix", [f]));
    assert.throws(
      () => runAction(s, "spin-fix", "APPLY", { timeoutMs: 20 }),
      (e: unknown) =>
        e instanceof XspliceError &&
        e.errno === "EBUSY" &&
        /spin_fn is (executing in|on the stack of) thread \d+ \(20 ms\)/.test(e.message),
    );
  });
  assert.deepEqual(readMemory(t.pid, BigInt(f.oldAddr), 34), before);
  const st = await status(t);
  assert.equal(st["errors"], 0);
});
