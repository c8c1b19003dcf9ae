import assert from "node:assert/strict";
import { test } from "node:test";
import { mapping } from "../../test/helpers/maps.ts";
import { addressesToCheck, hitsRange, stackFacts } from "./stack.ts";

const TEXT = mapping(0x400000n, 0x500000n, "/bin/x", true);
const STACK = mapping(0x7ff000000000n, 0x7ff000010000n, "[stack]", false);
const MAPS = [TEXT, STACK];

/** A synthetic stack: words written at addresses, read back through a `read` like /proc/PID/mem. */
function fakeStack(words: Map<bigint, bigint>) {
  const bytes = new Uint8Array(Number(STACK.end - STACK.start));
  const dv = new DataView(bytes.buffer);
  for (const [addr, v] of words) dv.setBigUint64(Number(addr - STACK.start), v, true);
  let reads = 0;
  const read = (addr: bigint, len: number) => {
    reads++;
    const off = Number(addr - STACK.start);
    assert.ok(off >= 0 && off + len <= bytes.length, "reads stay inside the stack mapping");
    return bytes.slice(off, off + len);
  };
  return { read, reads: () => reads };
}

const RSP = 0x7ff00000f000n;

test("frame-pointer walk follows the rbp chain to a zero rbp; the scan also sees stale words", () => {
  const f0 = RSP + 0x40n;
  const f1 = RSP + 0x100n;
  const stack = fakeStack(
    new Map([
      [RSP + 8n, 0x401111n], // a stale return address below the first frame
      [RSP + 0x10n, 0x7ff000000123n], // a stack pointer: not executable
      [f0, f1],
      [f0 + 8n, 0x402222n],
      [f1, 0n],
      [f1 + 8n, 0x403333n],
      [f1 + 0x20n, 0x402222n], // duplicate: reported once
    ]),
  );
  const facts = stackFacts({ regs: { rip: 0x404444n, rsp: RSP, rbp: f0 }, read: stack.read, maps: MAPS });
  assert.equal(facts.pc, 0x404444n);
  assert.equal(facts.method, "frame-pointer");
  assert.equal(facts.complete, true);
  assert.deepEqual(facts.returnAddresses, [0x402222n, 0x403333n]);
  assert.deepEqual(facts.possibleReturnAddresses, [0x401111n, 0x402222n, 0x403333n]);
  assert.deepEqual(facts.scanned, { start: RSP, end: STACK.end });
  assert.equal(facts.scanTruncated, false);
  assert.equal(stack.reads(), 1, "the stack is read in one go");
  assert.deepEqual(new Set(addressesToCheck(facts)), new Set([0x404444n, 0x401111n, 0x402222n, 0x403333n]));
  // "unwound" trusts a complete walk and leaves the stale word out.
  assert.deepEqual(new Set(addressesToCheck(facts, "unwound")), new Set([0x404444n, 0x402222n, 0x403333n]));
});

test("a broken rbp chain falls back to the scan, and the unwound policy then includes it", () => {
  const stack = fakeStack(new Map([[RSP + 0x18n, 0x401234n]]));
  // rbp used as a general register (-fomit-frame-pointer): points below rsp.
  const facts = stackFacts({ regs: { rip: 0x404444n, rsp: RSP, rbp: 5n }, read: stack.read, maps: MAPS });
  assert.equal(facts.method, "scan");
  assert.equal(facts.complete, false);
  assert.match(facts.stopReason ?? "", /rbp 0x5 is not a frame/);
  assert.deepEqual(facts.returnAddresses, [0x401234n]);
  assert.deepEqual(new Set(addressesToCheck(facts, "unwound")), new Set([0x404444n, 0x401234n]));
});

test("a frame chain that goes down or leaves the stack stops, keeping what it found", () => {
  const f0 = RSP + 0x80n;
  const stack = fakeStack(
    new Map([
      [f0, RSP + 0x40n], // the caller's frame below this one: corrupt
      [f0 + 8n, 0x402222n],
    ]),
  );
  const facts = stackFacts({ regs: { rip: 0x404444n, rsp: RSP, rbp: f0 }, read: stack.read, maps: MAPS });
  assert.equal(facts.method, "frame-pointer");
  assert.equal(facts.complete, false);
  assert.deepEqual(facts.returnAddresses, [0x402222n]);
  assert.match(facts.stopReason ?? "", /goes down/);
});

test("the scan is bounded by maxScanBytes and says so; rsp outside any mapping gives no scan", () => {
  const stack = fakeStack(new Map([[RSP + 0x800n, 0x401234n]]));
  const bounded = stackFacts({
    regs: { rip: 0x404444n, rsp: RSP, rbp: 0n },
    read: stack.read,
    maps: MAPS,
    maxScanBytes: 0x100,
  });
  assert.equal(bounded.scanTruncated, true);
  assert.deepEqual(bounded.scanned, { start: RSP, end: RSP + 0x100n });
  assert.deepEqual(bounded.possibleReturnAddresses, []);
  const full = stackFacts({ regs: { rip: 0x404444n, rsp: RSP, rbp: 0n }, read: stack.read, maps: MAPS });
  assert.deepEqual(full.possibleReturnAddresses, [0x401234n]);

  const lost = stackFacts({ regs: { rip: 0x404444n, rsp: 0x1000n, rbp: 0n }, read: stack.read, maps: MAPS });
  assert.equal(lost.method, "scan");
  assert.equal(lost.scanned, undefined);
  assert.match(lost.stopReason ?? "", /rsp 0x1000 is in no mapping/);
  assert.deepEqual(addressesToCheck(lost), [0x404444n]);
});

test("hitsRange counts an address at the end of a range: a return address one past a final call", () => {
  const stack = fakeStack(new Map([[RSP + 8n, 0x402000n]]));
  const facts = stackFacts({ regs: { rip: 0x404444n, rsp: RSP, rbp: 0n }, read: stack.read, maps: MAPS });
  assert.equal(
    hitsRange(facts, 0x401f00n, 0x402000n),
    0x402000n,
    "ra == end: the call was the last instruction",
  );
  assert.equal(hitsRange(facts, 0x402000n, 0x402100n), 0x402000n);
  assert.equal(hitsRange(facts, 0x402001n, 0x402100n), undefined);
  assert.equal(hitsRange(facts, 0x404440n, 0x404448n), 0x404444n, "the pc itself");
});
