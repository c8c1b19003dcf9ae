import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { decodeRegs, encodeRegs, REG_NAMES, REGS_SIZE } from "../arch/host.ts";
import { decodeWaitStatus, signalName } from "./libc.ts";

describe("libc: wait status decoding (the <sys/wait.h> macros, man 2 ptrace)", () => {
  const rows: [string, number, ReturnType<typeof decodeWaitStatus>][] = [
    ["exit 3", 3 << 8, { kind: "exited", tid: 7, code: 3 }],
    ["killed by SIGKILL", 9, { kind: "signaled", tid: 7, sig: 9, core: false }],
    ["SIGSEGV with core", 11 | 0x80, { kind: "signaled", tid: 7, sig: 11, core: true }],
    [
      "signal-delivery-stop SIGUSR1",
      (10 << 8) | 0x7f,
      { kind: "stopped", tid: 7, sig: 10, event: 0, stop: "signal-delivery" },
    ],
    [
      "PTRACE_INTERRUPT stop",
      (128 << 16) | (5 << 8) | 0x7f,
      { kind: "stopped", tid: 7, sig: 5, event: 128, stop: "interrupt" },
    ],
    [
      "group-stop SIGSTOP",
      (128 << 16) | (19 << 8) | 0x7f,
      { kind: "stopped", tid: 7, sig: 19, event: 128, stop: "group" },
    ],
    [
      "group-stop SIGTSTP",
      (128 << 16) | (20 << 8) | 0x7f,
      { kind: "stopped", tid: 7, sig: 20, event: 128, stop: "group" },
    ],
    [
      "clone event",
      (3 << 16) | (5 << 8) | 0x7f,
      { kind: "stopped", tid: 7, sig: 5, event: 3, stop: "event" },
    ],
  ];
  for (const [name, status, want] of rows)
    it(name, () => assert.deepEqual(decodeWaitStatus(7, status), want));
});

describe("libc: user_regs_struct", () => {
  it("has the kernel's 27 fields, 216 bytes, round-tripping every bit pattern", () => {
    assert.equal(REG_NAMES.length, 27);
    assert.equal(REGS_SIZE, 216);
    const buf = Buffer.alloc(REGS_SIZE);
    for (let i = 0; i < REGS_SIZE; i++) buf[i] = (i * 37 + 11) & 0xff;
    const regs = decodeRegs(buf);
    assert.equal(regs.r15, buf.readBigUInt64LE(0));
    assert.equal(regs.rip, buf.readBigUInt64LE(16 * 8));
    assert.equal(regs.gs, buf.readBigUInt64LE(26 * 8));
    assert.deepEqual(encodeRegs(regs), buf);
  });

  it("encodes negative values modulo 2^64 (orig_rax = -1)", () => {
    const regs = decodeRegs(Buffer.alloc(REGS_SIZE));
    regs.orig_rax = -1n;
    assert.equal(decodeRegs(encodeRegs(regs)).orig_rax, (1n << 64n) - 1n);
  });

  it("names signals, never throwing", () => {
    assert.equal(signalName(11), "SIGSEGV");
    assert.equal(signalName(34), "SIGRTMIN");
    assert.equal(signalName(36), "SIGRTMIN+2");
    assert.equal(signalName(99), "signal 99");
  });
});
