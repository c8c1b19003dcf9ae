/**
 * The inject stub's hand-encoded bytes against GNU as assembling the same
 * instructions (the oracle), and the resume context's system-call restart rules.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import {
  BOOT_TARGET,
  BOOT_WAIT_RETURN,
  bootAssembly,
  bootBlockOf,
  bootCode,
  CHUNK,
  FIELDS_SIZE,
  resumeContext,
  stubAssembly,
  stubCode,
  WAIT_RETURN,
} from "./inject-stub.ts";
import { decodeRegs, REGS_SIZE } from "./regs.ts";

/** GNU as (the oracle) assembling `source`: the bytes of its .text. */
function assemble(source: string): Buffer {
  const dir = mkdtempSync(join(tmpdir(), "xsplice-stub-"));
  try {
    writeFileSync(join(dir, "stub.s"), source);
    execFileSync("as", ["-o", join(dir, "stub.o"), join(dir, "stub.s")]);
    execFileSync("objcopy", ["-O", "binary", "-j", ".text", join(dir, "stub.o"), join(dir, "stub.bin")]);
    return readFileSync(join(dir, "stub.bin"));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe("inject stub", () => {
  it("encodes exactly what GNU as makes of its assembly, within one chunk", () => {
    const code = stubCode();
    assert.ok(code.length <= CHUNK && FIELDS_SIZE <= CHUNK);
    assert.deepEqual(assemble(stubAssembly()).subarray(0, code.length), Buffer.from(code));
    // The wait's return point follows the second `syscall`.
    assert.deepEqual([...code.subarray(WAIT_RETURN - 2, WAIT_RETURN)], [0x0f, 0x05]);
  });

  it("bootstrap stub: encodes what GNU as makes of its assembly, the resume pc last", () => {
    const target = 0x7f12_3456_789an;
    const code = bootCode(target);
    assert.deepEqual(assemble(bootAssembly(target)), Buffer.from(code));
    assert.equal(Buffer.from(code).readBigUInt64LE(BOOT_TARGET), target);
    assert.deepEqual([...code.subarray(BOOT_WAIT_RETURN - 2, BOOT_WAIT_RETURN)], [0x0f, 0x05]);
  });

  it("bootstrap stub: the block is found from rsp at every point of the restore", () => {
    const base = 0x1000n;
    const len = bootCode(0n).length;
    const lea = len - 8 - 6 - 4 - 1 - 8;
    assert.equal(bootBlockOf(base, base + BigInt(BOOT_WAIT_RETURN), 0x9000n), 0x9000n);
    assert.equal(bootBlockOf(base, base + BigInt(lea), 0x9000n), 0x9000n);
    assert.equal(bootBlockOf(base, base + BigInt(lea + 8), 0x9000n + 160n), 0x9000n);
    assert.equal(bootBlockOf(base, base + BigInt(lea + 9), 0x9000n + 168n), 0x9000n);
    assert.equal(bootBlockOf(base, base + BigInt(lea + 13), 0x5555n), undefined);
  });

  it("resume context: restartable system calls go back onto their syscall instruction", () => {
    const base = decodeRegs(Buffer.alloc(REGS_SIZE));
    const at = (orig: bigint, rax: bigint) =>
      resumeContext({
        ...base,
        rip: 0x1002n,
        orig_rax: BigInt.asUintN(64, orig),
        rax: BigInt.asUintN(64, rax),
      });
    for (const e of [-512n, -513n, -514n]) {
      const r = at(0n, e); // read interrupted
      assert.equal(r.rax, 0n);
      assert.equal(r.rip, 0x1000n);
    }
    const nano = at(230n, -516n); // clock_nanosleep -> restart_syscall
    assert.equal(nano.rax, 219n);
    assert.equal(nano.rip, 0x1000n);
    const eintr = at(232n, -4n); // epoll_wait's EINTR is what the program sees anyway
    assert.equal(BigInt.asIntN(64, eintr.rax), -4n);
    assert.equal(eintr.rip, 0x1002n);
    const user = at(-1n, -512n); // not in a system call: nothing to restart
    assert.equal(user.rip, 0x1002n);
    assert.equal(user.orig_rax, (1n << 64n) - 1n);
  });
});
