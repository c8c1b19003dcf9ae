import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { compileC, tool } from "../../../test/helpers/cc.ts";
import { branchTarget, disassemble } from "../../../test/link/_disasm.ts";
import { archFor } from "../../arch/index.ts";
import { EM } from "../../elf/index.ts";
import { XspliceError } from "../../errors.ts";
import { checkPatchSite } from "./patch-site.ts";

const arch = archFor(EM.X86_64);

function entryBytes(cf: string): Uint8Array {
  const obj = compileC({ sources: ["link/endbr.c"], kind: "obj", flags: ["-O2", cf] });
  const bin = `${obj}.text.bin`;
  tool("objcopy", ["-O", "binary", "-j", ".text", obj, bin]);
  return new Uint8Array(readFileSync(bin));
}

for (const [cf, min] of [
  ["-fcf-protection=full", 9],
  ["-fcf-protection=none", 5],
] as const) {
  test(`${cf}: old_size ${min - 1} EINVAL, ${min} gives a jump after the kept prefix`, () => {
    const code = entryBytes(cf);
    const oldAddr = 0x5555_5555_1000n;
    const newAddr = 0x5555_6000_0000n;
    assert.throws(
      () => checkPatchSite(arch, code, min - 1, oldAddr, newAddr, "endbr_target"),
      (e) => e instanceof XspliceError && e.errno === "EINVAL" && /endbr_target: old_size/.test(e.message),
    );
    const site = checkPatchSite(arch, code, min, oldAddr, newAddr, "endbr_target");
    assert.equal(site.at, oldAddr + BigInt(min - 5));
    const jmp = disassemble(site.bytes, site.at)[0]!;
    assert.equal(jmp.mnemonic, "jmp");
    assert.equal(branchTarget(jmp), newAddr);
  });
}

test("a replacement out of reach is EOVERFLOW naming the function", () => {
  assert.throws(
    () =>
      checkPatchSite(arch, entryBytes("-fcf-protection=none"), 64, 0x40_0000n, 0x7f00_0000_0000n, "handler"),
    (e) =>
      e instanceof XspliceError &&
      e.errno === "EOVERFLOW" &&
      /^handler: replacement is out of reach/.test(e.message),
  );
});
