import assert from "node:assert/strict";
import { test } from "node:test";
import { type PatchWrite, SPAN_GAP, spansOf } from "./patch-plan.ts";

function w(addr: bigint, after: number[], func = `f${addr.toString(16)}`): PatchWrite {
  return {
    addr,
    before: new Uint8Array(after.length).fill(0x90),
    after: new Uint8Array(after),
    payload: "p",
    func,
    step: 0,
  };
}

test("spansOf joins writes at most SPAN_GAP bytes apart, sorted by address, with their offsets", () => {
  const a = w(0x401000n, [1, 2, 3, 4, 5]);
  const b = w(0x401005n + BigInt(SPAN_GAP), [6, 7, 8, 9, 10]); // gap exactly SPAN_GAP: joined
  const c = w(0x400800n, [11, 12, 13, 14, 15]); // below a: joined, first
  const d = w(0x40a00an + BigInt(SPAN_GAP) + 1n, [16]); // far away: a span of its own
  const spans = spansOf([a, b, c, d]);
  assert.equal(spans.length, 2);
  const [first, second] = spans;
  assert.equal(first!.addr, 0x400800n);
  assert.deepEqual(
    first!.writes.map((x) => [x.write.func, x.offset]),
    [
      [c.func, 0],
      [a.func, 0x800],
      [b.func, 0x805 + SPAN_GAP],
    ],
  );
  assert.equal(first!.len, 0x805 + SPAN_GAP + 5);
  assert.equal(second!.addr, d.addr);
  assert.equal(second!.len, 1);
});

test("spansOf: a gap of a page or more is never joined (the span could cross an unmapped page)", () => {
  const a = w(0x401000n, [1, 2, 3, 4, 5]);
  const b = w(0x401005n + BigInt(SPAN_GAP) + 1n, [6]);
  assert.equal(SPAN_GAP, 4095);
  assert.deepEqual(
    spansOf([a, b]).map((s) => s.addr),
    [a.addr, b.addr],
  );
});

test("spansOf keeps overlapping writes in order: a later write to the same bytes goes in a later span", () => {
  const first = w(0x401000n, [1, 2, 3, 4, 5], "first");
  const other = w(0x401010n, [6, 7, 8, 9, 10], "other");
  const again = w(0x401002n, [11, 12], "again"); // overlaps `first`
  const last = w(0x400ff0n, [13], "last");
  const spans = spansOf([first, other, again, last]);
  assert.deepEqual(
    spans.map((s) => s.writes.map((x) => x.write.func)),
    [
      ["first", "other"],
      ["last", "again"],
    ],
  );
  // Every write appears exactly once.
  assert.equal(spans.flatMap((s) => s.writes).length, 4);
});
