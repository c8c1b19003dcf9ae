/** Talking to the running action fixture (test/fixtures/actions/actions-target.c). */
import type { Target } from "../../helpers/target.ts";

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
