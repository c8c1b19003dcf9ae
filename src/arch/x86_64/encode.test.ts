import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, test } from "node:test";
import { compileC, tool } from "../../../test/helpers/cc.ts";
import { branchTarget, disassemble } from "../../../test/link/_disasm.ts";
import { XspliceError } from "../../errors.ts";
import { absoluteStub, minPatchSize, nops, patchOffset, trampoline } from "./encode.ts";

const GiB2 = 1n << 31n;

describe("trampoline", () => {
  // (at, to) pairs around the rel32 limits: the displacement counts from the end of the 5-byte jmp.
  const at = 0x7f00_1234_5000n;
  const reachable = [
    ["forward", at + 0x40n],
    ["backward", at - 0x1000n],
    ["max forward", at + 5n + GiB2 - 1n],
    ["max backward", at + 5n - GiB2],
    ["to itself", at],
  ] as const;
  for (const [what, to] of reachable) {
    test(`${what}: objdump decodes a jmp to the target`, () => {
      const bytes = trampoline(at, to);
      const insns = disassemble(bytes, at);
      assert.equal(insns.length, 1);
      assert.equal(insns[0]!.mnemonic, "jmp");
      assert.equal(insns[0]!.bytes.length, bytes.length);
      assert.equal(branchTarget(insns[0]!), to);
    });
  }
  for (const [what, to] of [
    ["one past max forward", at + 5n + GiB2],
    ["one past max backward", at + 5n - GiB2 - 1n],
    ["far away", 0x1000n],
  ] as const) {
    test(`${what}: EOVERFLOW`, () => {
      assert.throws(
        () => trampoline(at, to),
        (e) => e instanceof XspliceError && e.errno === "EOVERFLOW" && /out of reach/.test(e.message),
      );
    });
  }
});

test("nops(1..31) decode to NOP instructions only, exactly n bytes each", () => {
  // One blob of all lengths back to back: every length's first byte must start an instruction,
  // so each sequence decodes to whole instructions on its own.
  const lengths = Array.from({ length: 31 }, (_, i) => i + 1);
  const parts = lengths.map((n) => nops(n));
  for (const [i, p] of parts.entries()) assert.equal(p.length, lengths[i]);
  const blob = new Uint8Array(parts.reduce((s, p) => s + p.length, 0));
  const starts = new Set<bigint>();
  let off = 0;
  for (const p of parts) {
    starts.add(BigInt(off));
    blob.set(p, off);
    off += p.length;
  }
  const insns = disassemble(blob, 0n);
  const decodedStarts = new Set(insns.map((i) => i.address));
  for (const s of starts) assert.ok(decodedStarts.has(s), `sequence at ${s} starts an instruction`);
  for (const i of insns) {
    // objdump prints `66 90` as `xchg %ax,%ax`, the 2-byte NOP.
    const isNop = /^nop[lw]?$/.test(i.mnemonic) || (i.mnemonic === "xchg" && i.operands === "%ax,%ax");
    assert.ok(isNop, `${i.mnemonic} ${i.operands} is a NOP`);
  }
  assert.equal(
    insns.reduce((s, i) => s + i.bytes.length, 0),
    blob.length,
  );
  assert.equal(nops(0).length, 0);
  assert.throws(() => nops(-1), XspliceError);
});

describe("endbr64", () => {
  for (const [cf, expected] of [
    ["-fcf-protection=full", 4],
    ["-fcf-protection=none", 0],
  ] as const) {
    test(`${cf}: patchOffset ${expected}, minPatchSize ${expected + 5}`, () => {
      const obj = compileC({ sources: ["link/endbr.c"], kind: "obj", flags: ["-O2", cf] });
      const bin = `${obj}.text.bin`;
      tool("objcopy", ["-O", "binary", "-j", ".text", obj, bin]);
      const code = new Uint8Array(readFileSync(bin));
      const first = disassemble(code, 0n)[0]!;
      assert.equal(first.mnemonic === "endbr64", expected === 4, "objdump agrees on the first instruction");
      assert.equal(patchOffset(code), expected);
      assert.equal(minPatchSize(code), expected + 5);
    });
  }
  test("a truncated prefix is not endbr64", () => {
    assert.equal(patchOffset(Uint8Array.of(0xf3, 0x0f, 0x1e)), 0);
  });
});

test("absoluteStub jumps through the 8 bytes that follow it", () => {
  const at = 0x5555_0000_1000n;
  for (const to of [0x7fff_ffff_f000n, 0x10n, at + 14n]) {
    const stub = absoluteStub(to);
    const insns = disassemble(stub, at);
    assert.equal(insns[0]!.mnemonic, "jmp");
    assert.match(insns[0]!.operands, /^\*0x0\(%rip\)\s+# 0x([0-9a-f]+)/);
    const slot = BigInt(`0x${/# 0x([0-9a-f]+)/.exec(insns[0]!.operands)![1]}`);
    const off = Number(slot - at);
    assert.equal(off + 8, stub.length);
    assert.equal(new DataView(stub.buffer).getBigUint64(off, true), to);
  }
});
