import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { compileC, tool } from "../../../test/helpers/cc.ts";
import { codeRelocations, disassemble } from "../../../test/link/_disasm.ts";
import { XspliceError } from "../../errors.ts";
import { loadFromSlot, pcFieldUse } from "./insn.ts";

// objdump's mnemonic of the instruction holding each PC32/PLT32 field is the oracle.
function expectedUse(mnemonic: string): string {
  if (/^(call|jmp|j[a-z]+)$/.test(mnemonic)) return "branch";
  if (mnemonic === "lea") return "address";
  return "other";
}

for (const pic of ["-fno-pic", "-fpie"]) {
  test(`pcFieldUse agrees with objdump on every PC-relative field (${pic})`, () => {
    const obj = compileC({
      sources: ["link/insn.c"],
      kind: "obj",
      flags: ["-O2", pic, "-fcf-protection=none"],
      name: `insn${pic}`,
    });
    const bin = `${obj}.text.bin`;
    tool("objcopy", ["-O", "binary", "-j", ".text", obj, bin]);
    const code = new Uint8Array(readFileSync(bin));
    const relocs = codeRelocations(obj).filter((r) => /_(PC32|PLT32)$/.test(r.type));
    assert.ok(relocs.length >= 6, "the fixture has calls, jumps and data references");
    const seen = new Set<string>();
    for (const r of relocs) {
      const use = pcFieldUse(code, r.offset);
      seen.add(use);
      assert.equal(use, expectedUse(r.mnemonic), `${r.mnemonic} at 0x${r.offset.toString(16)} (${r.type})`);
    }
    assert.ok(seen.has("branch") && seen.has("other"));
    if (pic === "-fpie") assert.ok(seen.has("address"), "-fpie computes addresses with lea");
  });
}

test("loadFromSlot turns a RIP-relative lea into a mov from the same displacement", () => {
  const obj = compileC({
    sources: ["link/insn.c"],
    kind: "obj",
    flags: ["-O2", "-fpie", "-fcf-protection=none"],
    name: "insn-fpie",
  });
  const bin = `${obj}.text.bin`;
  tool("objcopy", ["-O", "binary", "-j", ".text", obj, bin]);
  const code = new Uint8Array(readFileSync(bin));
  const lea = codeRelocations(obj).find((r) => r.mnemonic === "lea")!;
  const before = disassemble(code, 0n).find((i) => i.address + BigInt(i.bytes.length) > BigInt(lea.offset))!;
  loadFromSlot(code, lea.offset);
  const after = disassemble(code, 0n).find((i) => i.address === before.address)!;
  assert.equal(after.mnemonic, "mov");
  assert.equal(after.operands, before.operands, "same operands: disp(%rip) into the same register");
  assert.throws(
    () => loadFromSlot(code, lea.offset),
    (e) => e instanceof XspliceError && e.errno === "EINVAL",
  );
});
