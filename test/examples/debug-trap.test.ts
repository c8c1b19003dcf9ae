/**
 * Example 2 (examples/debug-trap/): an XSPLICE_NOP entry that removes a
 * leftover `int3` from a running worker, end to end: build the target, start
 * it, build the payload with `xsplice build`, `xsplice load`, observe that
 * items no longer trap, `xsplice revert`, observe the trap again, unload.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { join } from "node:path";
import { test } from "node:test";
import {
  ask,
  buildExamplePayload,
  outDir,
  programForFile,
  requireCommands,
  stateOf,
  xs,
} from "./_examples.ts";

const worker = programForFile("worker");

/** Process one item; returns the trap count the worker reports after it. */
async function work(): Promise<number> {
  const line = await ask(worker.program, "work", /^item \d+ /);
  return Number(/traps=(\d+)/.exec(line)?.[1]);
}

test("debug_break is exactly `int3; ret` in the built target (objdump)", () => {
  const dis = execFileSync("objdump", ["-d", "--no-show-raw-insn", `--disassemble=debug_break`, worker.exe], {
    encoding: "utf8",
  });
  const insns = dis
    .split("\n")
    .map((l) => /^\s+[0-9a-f]+:\s+(\S+)/.exec(l)?.[1])
    .filter((m) => m !== undefined);
  assert.deepEqual(insns.slice(0, 2), ["int3", "ret"]);
});

test("every item traps on the unpatched worker", async () => {
  const before = await work();
  assert.equal(await work(), before + 1);
  assert.ok(worker.program.lines.some((l) => /^debug trap #\d+$/.test(l)));
});

test("the payload is one 1-byte NOP entry over debug_break", async () => {
  const out = join(outDir(), "nop.xsplice");
  const built = await buildExamplePayload("debug-trap/nop.c", worker.exe, out);
  assert.deepEqual(
    built.funcs.map((f) => [f.name, f.nop, f.newSize]),
    [["debug_break", true, 1]],
  );
  const doc = await xs(["inspect", out]);
  assert.deepEqual(
    (doc["funcs"] as { name: string; nop: boolean; newSize: number }[]).map((f) => [
      f.name,
      f.nop,
      f.newSize,
    ]),
    [["debug_break", true, 1]],
  );
});

test("load the NOP: items stop trapping; revert: they trap again", async () => {
  await requireCommands();
  const out = join(outDir(), "nop.xsplice");
  await buildExamplePayload("debug-trap/nop.c", worker.exe, out);
  const pid = String(worker.program.pid);
  const start = await work();

  await xs(["load", pid, out]);
  assert.equal(await stateOf(worker.program.pid, "nop"), "APPLIED");
  assert.equal(await work(), start, "no trap with the NOP in place");
  assert.equal(await work(), start);

  await xs(["revert", pid, "nop"]);
  assert.equal(await stateOf(worker.program.pid, "nop"), "CHECKED");
  assert.equal(await work(), start + 1, "the int3 is back after the revert");

  await xs(["unload", pid, "nop"]);
  assert.equal(worker.program.exited, false);
});
