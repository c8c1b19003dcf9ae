/**
 * The span writes of the stop (`writeSpan`/`undoWrites` in execute.ts) on a
 * real stopped target: nearby functions written in one span leave the bytes
 * between them as they were; a span whose `before` bytes do not match is
 * refused with nothing of it written; undo puts back every span written, and
 * the target then behaves as before.
 */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { undoWrites, type Written, writeSpan } from "../../../src/core/execute.ts";
import { type PatchWrite, spansOf } from "../../../src/core/patch-plan.ts";
import { openTarget } from "../../../src/core/session.ts";
import { XspliceError } from "../../../src/errors.ts";
import { readMemory } from "../../../src/process/memory.ts";
import { startTarget, symbolAddress, type Target } from "../../helpers/target.ts";
import { actionsTarget } from "./_hand.ts";

let exe: string;
let t: Target;

before(async () => {
  exe = actionsTarget(true);
  t = await startTarget(exe, ["1"]);
});
after(async () => {
  await t.kill();
});

async function call(x: number): Promise<string> {
  const from = t.lines.length;
  t.send(`call ${x}`);
  return t.waitFor(new RegExp(`^result ${x} `), { from });
}

function write(addr: bigint, before: Uint8Array, after: number[], func: string): PatchWrite {
  return { addr, before, after: new Uint8Array(after), payload: "spans", func, step: 0 };
}

test("two functions in one span, a mismatching span refused, undo restores everything", async () => {
  const resultBefore = await call(5);
  const oldFn = symbolAddress(t.pid, exe, "old_fn");
  const newFn = symbolAddress(t.pid, exe, "new_fn");
  const [lo, hi] = [oldFn, newFn].sort((a, b) => (a < b ? -1 : 1)) as [bigint, bigint];
  const session = openTarget(t.pid, { recover: false });
  const mem = session.tracee.memory;
  try {
    const region = readMemory(t.pid, lo, Number(hi - lo) + 16);
    const at = (a: bigint, n: number) => region.slice(Number(a - lo), Number(a - lo) + n);
    const trap = [0xcc, 0xcc, 0xcc, 0xcc, 0xcc];
    const near = spansOf([
      write(oldFn, at(oldFn, 5), trap, "old_fn"),
      write(newFn, at(newFn, 5), trap, "new_fn"),
    ]);
    assert.equal(near.length, 1, "functions less than a page apart share a span");
    // A third write whose `before` is wrong, far enough to be a span of its own.
    const far = hi + 0x3000n;
    const wrongBefore = readMemory(t.pid, far, 4).map((b) => b ^ 0xff);
    const [bad] = spansOf([write(far, wrongBefore, [0x90, 0x90, 0x90, 0x90], "far_fn")]);
    const farBytes = readMemory(t.pid, far, 4);

    const written: Written[] = [];
    writeSpan(mem, near[0]!, written);
    const now = readMemory(t.pid, lo, region.length);
    for (let i = 0; i < region.length; i++) {
      const a = lo + BigInt(i);
      const patched = (a >= oldFn && a < oldFn + 5n) || (a >= newFn && a < newFn + 5n);
      assert.equal(now[i], patched ? 0xcc : region[i], `byte at 0x${a.toString(16)}`);
    }
    assert.throws(
      () => writeSpan(mem, bad!, written),
      (e: unknown) =>
        e instanceof XspliceError && e.errno === "EINVAL" && /far_fn at 0x[0-9a-f]+ holds/.test(e.message),
    );
    assert.deepEqual(readMemory(t.pid, far, 4), farBytes, "nothing of the refused span written");
    assert.equal(written.length, 1);
    assert.deepEqual(undoWrites(mem, written), []);
    assert.deepEqual(readMemory(t.pid, lo, region.length), region);
  } finally {
    session.close();
  }
  assert.equal(await call(5), resultBefore, "the target behaves as before");
});
