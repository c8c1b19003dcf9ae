/** Starting and talking to the running action fixture (test/fixtures/actions/actions-target.c). */
import { after, before } from "node:test";
import { startTarget, type Target } from "../../helpers/target.ts";
import { actionsTarget } from "./_hand.ts";

/** The action fixture a test file shares, and the executable it runs. */
export type FileTarget = Target & { exe: string };

/**
 * Build the action fixture (with CET) and start it with `workers` worker
 * threads before this test file's tests; kill it after them. Call at the top
 * level of a test file. The fields are set by the `before` hook, so read them
 * only inside tests (Node 20 starts a file's root-level hooks together).
 */
export function actionsTargetForFile(workers: number): FileTarget {
  const t = {} as FileTarget;
  before(async () => {
    const exe = actionsTarget(true);
    Object.assign(t, await startTarget(exe, [String(workers)]), { exe });
  });
  after(async () => {
    await t.kill?.();
  });
  return t;
}

/** old_fn's original formula. */
export function oldFormula(x: bigint): bigint {
  return ((x * 31n + 7n) ^ 0x5an) + (x >> 3n);
}

/** old_fn(x) as called by the target's main thread. */
export async function callOld(t: Target, x: number): Promise<bigint> {
  const from = t.lines.length;
  t.send(`call ${x}`);
  const line = await t.waitFor(new RegExp(`^result ${x} `), { from });
  return BigInt(line.split(" ")[2]!);
}

/** The workers' counters: calls, old, new, errors, sent, recv. */
export async function status(t: Target): Promise<Record<string, number>> {
  const from = t.lines.length;
  t.send("status");
  const line = await t.waitFor(/^status /, { from });
  return Object.fromEntries(
    line
      .slice(7)
      .split(" ")
      .map((kv) => kv.split("="))
      .map(([k, v]) => [k!, Number(v)]),
  );
}

/** nop_fn(x) and the counter it increments (unless NOPed). */
export async function callNop(t: Target, x: number): Promise<{ r: number; counter: number }> {
  const from = t.lines.length;
  t.send(`nop ${x}`);
  const line = await t.waitFor(/^nop /, { from });
  const [, r, counter] = line.split(" ");
  return { r: Number(r), counter: Number(counter) };
}
