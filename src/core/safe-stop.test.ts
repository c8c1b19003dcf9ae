import assert from "node:assert/strict";
import { test } from "node:test";
import { mapping } from "../../test/helpers/maps.ts";
import { addressesToCheck, stackFacts } from "../process/stack.ts";
import type { GuardRange } from "./patch-plan.ts";
import { GuardIndex, scanForGuards } from "./safe-stop.ts";

const TEXT = mapping(0x555555554000n, 0x555555600000n, "/bin/x", true);
const LIBC = mapping(0x7f0000000000n, 0x7f0000200000n, "/lib/libc.so.6", true);
const STACK = mapping(0x7ffd00000000n, 0x7ffd00004000n, "[stack]", false);
const MAPS = [TEXT, LIBC, STACK];

function guard(start: bigint, end: bigint, func: string): GuardRange {
  return { start, end, func, payload: "p" };
}

/** A small deterministic PRNG (xorshift32), so that a failure can be replayed. */
function prng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x / 0x100000000;
  };
}

test("GuardIndex: a pc counts in [start, end), a return address in [start, end]; first guard in the caller's order", () => {
  const guards = [
    guard(0x555555560000n, 0x555555560040n, "b"),
    guard(0x555555558000n, 0x555555558100n, "a"),
    guard(0x555555558000n, 0x555555558100n, "a-again"), // REPLACE: the same function in two steps
    guard(0x555555558100n, 0x555555558180n, "next"), // adjacent: merged for the filter only
  ];
  const index = new GuardIndex(guards);
  assert.equal(index.exact, true);
  assert.equal(index.atPc(0x555555558000n)?.func, "a");
  assert.equal(index.atPc(0x5555555580ffn)?.func, "a");
  assert.equal(index.atPc(0x555555558100n)?.func, "next", "a pc at a's end is in the next function");
  assert.equal(index.atPc(0x555555560040n), undefined);
  assert.equal(index.returningTo(0x555555558100n)?.func, "a", "one past a final call still counts");
  assert.equal(index.returningTo(0x555555560040n)?.func, "b");
  assert.equal(index.returningTo(0x555555560041n), undefined);
  assert.equal(index.near(Number(0x555555558180n)), true);
  assert.equal(index.near(Number(0x555555558181n)), false);
  assert.equal(index.near(Number(0x55555555ffffn)), false);
});

test("scanForGuards finds every stack whose conservative check hits, and only words in a guard", () => {
  const rand = prng(20240611);
  const guards = [
    guard(0x555555558000n, 0x555555558040n, "f0"),
    guard(0x555555559000n, 0x555555559200n, "f1"),
    guard(0x5555555a0000n, 0x5555555a0010n, "f2"),
  ];
  const index = new GuardIndex(guards);
  let hits = 0;
  for (let trial = 0; trial < 400; trial++) {
    const rsp = STACK.end - BigInt(8 * (16 + Math.floor(rand() * 200)));
    const bytes = new Uint8Array(Number(STACK.end - rsp));
    const dv = new DataView(bytes.buffer);
    for (let off = 0; off < bytes.length; off += 8) {
      const r = rand();
      let v: bigint;
      if (r < 0.3)
        v = STACK.start + BigInt(Math.floor(rand() * 0x4000)); // stack pointers
      else if (r < 0.5)
        v = LIBC.start + BigInt(Math.floor(rand() * 0x200000)); // libc return addresses
      else if (r < 0.7)
        v = BigInt(Math.floor(rand() * 1000)); // small integers
      else if (r < 0.995)
        v = TEXT.start + BigInt(Math.floor(rand() * 0x4000)); // text outside the guards
      else {
        const g = guards[Math.floor(rand() * guards.length)]!;
        v = g.start + BigInt(Math.floor(rand() * Number(g.end - g.start + 1n))); // into a guard, end included
      }
      dv.setBigUint64(off, v, true);
    }
    const pc = TEXT.start + 0x100n;
    const facts = stackFacts({
      regs: { rip: pc, rsp, rbp: 0n },
      read: (a, l) => bytes.slice(Number(a - rsp), Number(a - rsp) + l),
      maps: MAPS,
    });
    const old = addressesToCheck(facts, "conservative").filter(
      (a) => a !== pc && guards.some((g) => a >= g.start && a <= g.end),
    );
    const found = scanForGuards(bytes, pc, index);
    if (old.length === 0) {
      assert.equal(found, undefined, `trial ${trial}: a hit where the full check has none`);
      continue;
    }
    hits++;
    assert.ok(found, `trial ${trial}: missed ${old.map((a) => a.toString(16)).join(", ")}`);
    assert.ok(found.addr >= found.guard.start && found.addr <= found.guard.end);
    assert.ok(
      old.includes(found.addr),
      `trial ${trial}: ${found.addr.toString(16)} is not a checked address`,
    );
  }
  assert.ok(hits > 50 && hits < 400, `both outcomes exercised (${hits} hits)`);
});

test("scanForGuards counts a guarded word outside executable memory and skips the pc's own value", () => {
  const g = guard(0x555555600000n, 0x555555600010n, "at-text-end"); // end == TEXT.end: not executable
  const index = new GuardIndex([g]);
  const bytes = new Uint8Array(32);
  const dv = new DataView(bytes.buffer);
  dv.setBigUint64(8, 0x555555600008n, true);
  assert.equal(scanForGuards(bytes, 0x555555600008n, index), undefined, "the pc's value is the pc's check");
  assert.equal(scanForGuards(bytes, 0n, index)?.addr, 0x555555600008n);
  dv.setBigUint64(8, 0n, true);
  dv.setBigUint64(24, 0x555555600010n, true);
  assert.equal(scanForGuards(bytes, 0n, index)?.addr, 0x555555600010n, "the end counts for a return address");
});
