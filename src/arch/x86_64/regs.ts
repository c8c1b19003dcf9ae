/**
 * The general registers of an x86-64 thread as the kernel's ptrace interface
 * lays them out (`struct user_regs_struct`, <sys/user.h>), and the register
 * facts the code that drives live processes needs.
 */

/** The 27 fields of the kernel's `struct user_regs_struct` (x86-64), in layout order. */
export const REG_NAMES = [
  "r15",
  "r14",
  "r13",
  "r12",
  "rbp",
  "rbx",
  "r11",
  "r10",
  "r9",
  "r8",
  "rax",
  "rcx",
  "rdx",
  "rsi",
  "rdi",
  "orig_rax",
  "rip",
  "cs",
  "eflags",
  "rsp",
  "ss",
  "fs_base",
  "gs_base",
  "ds",
  "es",
  "fs",
  "gs",
] as const;

/** `struct user_regs_struct`: each field as an unsigned 64-bit bigint (`orig_rax` -1 is `2^64-1`). */
export type Regs = Record<(typeof REG_NAMES)[number], bigint>;

/** Size of `struct user_regs_struct`. */
export const REGS_SIZE = REG_NAMES.length * 8;

/** Byte offset of each register in `struct user_regs_struct`, for reading one from a raw buffer. */
export const REG_OFFSET = Object.freeze(
  Object.fromEntries(REG_NAMES.map((name, i) => [name, i * 8])) as Record<(typeof REG_NAMES)[number], number>,
);

/** Decode a `user_regs_struct` buffer. */
export function decodeRegs(buf: Buffer): Regs {
  const r = {} as Regs;
  for (let i = 0; i < REG_NAMES.length; i++) r[REG_NAMES[i]!] = buf.readBigUInt64LE(i * 8);
  return r;
}

/** Encode registers into a `user_regs_struct` buffer; values are taken modulo 2^64 (so -1n works). */
export function encodeRegs(r: Regs): Buffer {
  const buf = Buffer.alloc(REGS_SIZE);
  REG_NAMES.forEach((name, i) => {
    buf.writeBigUInt64LE(BigInt.asUintN(64, r[name]), i * 8);
  });
  return buf;
}

/** `NT_X86_XSTATE`: the regset holding the FPU/SSE/AVX state (`PTRACE_GETREGSET`), in XSAVE format. */
export const FP_REGSET = 0x202;

/** Bytes below rsp that a leaf function may use without moving rsp (SysV x86-64 ABI §3.2.2). */
export const RED_ZONE = 128n;

/** The program counter of a thread. */
export function pcOf(r: Regs): bigint {
  return r.rip;
}

/** The stack pointer of a thread. */
export function spOf(r: Regs): bigint {
  return r.rsp;
}
