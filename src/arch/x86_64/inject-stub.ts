/**
 * The machine code of xsplice's inject page (x86-64): the code a thread runs
 * for an injected system call or function call, and which, when no tracer is
 * left to do it, puts the thread back into the context it was interrupted in
 * (SPEC §6: "the target must never notice … even if xsplice itself is killed
 * half-way"). Pure bytes and offsets; `inject-page.ts` maps them into a target.
 *
 * Layout of one slot (SLOT_COUNT slots; chunk `i` of the code page and chunk
 * `i` of the data page are exactly `DATA_DISTANCE` bytes apart, so every slot
 * runs the same position-independent code and reaches its own data with
 * rip-relative addressing — no base register is needed, which is what lets
 * the last instruction be a memory-indirect `jmp` with every register restored):
 *
 *   entry_syscall:  syscall                      rax = nr, args in rdi rsi rdx r10 r8 r9
 *                   jmp done
 *   entry_call:     call *FN(%rip)               rsp 16-aligned, args in rdi..r9
 *   done:           mov %rax, RESULT(%rip)
 *                   movq $1, DONE(%rip)          the living tracer polls this word
 *                   select(0, 0, 0, 0, &TV)      wait for the tracer, bounded (TV)
 *   restore:        if IMAGE: xrstor64 (IMAGE) with edx:eax = -1
 *                   rt_sigprocmask(SIG_SETMASK, &MASK, NULL, 8)
 *                   rsp = RSP - 144; push FLAGS; popfq; rsp += 144
 *                   rax … r15 = saved values
 *                   jmp *RIP(%rip)
 *
 * Why these choices:
 * - `select` with a timeout, not `futex`/`nanosleep`/`poll`: when the living
 *   tracer interrupts the wait, `select` returns -ERESTARTNOHAND and leaves the
 *   thread's `restart_block` alone. The others return -ERESTART_RESTARTBLOCK
 *   and overwrite it, and an interrupted `nanosleep` of the target, resumed
 *   through `restart_syscall`, would then run our wait instead of its own.
 * - No `rt_sigreturn`: it would restore everything atomically, but it resets
 *   `restart_block` too (an interrupted nanosleep would return EINTR).
 * - Flags go through the stack *below the red zone* (rsp - 144 .. rsp - 136),
 *   memory the ABI gives to signal frames, and are popped before rsp is
 *   restored; after that the stack is not touched, so a signal arriving at any
 *   point of the sequence (the mask is already the thread's own) writes its
 *   frame below rsp - 128 and disturbs nothing. The jump is `jmp *`, not `ret`:
 *   a thread with a CET shadow stack would fault on an unmatched `ret`.
 * - `xrstor64` of the thread's own `NT_X86_XSTATE` image (standard format,
 *   XCOMP_BV 0) with every request bit set: components whose XSTATE_BV bit is
 *   clear return to their initial state, exactly as they were saved.
 */

import { SYS } from "./linux.ts";
import type { Regs } from "./regs.ts";

/** Bytes from a code chunk to its data chunk (one page: the data page follows the code page). */
export const DATA_DISTANCE = 4096;
/** Bytes per slot in the code page and in the data page. */
export const CHUNK = 256;
/** Slots per process: 16 chunks of 256 bytes fill the code page. */
export const SLOT_COUNT = DATA_DISTANCE / CHUNK;
/** Offset of the syscall entry in a code chunk. */
export const ENTRY_SYSCALL = 0;
/** Offset of the call entry in a code chunk. */
export const ENTRY_CALL = 4;

/** Offsets of the fields of one data chunk. */
export const FIELD = {
  /** u32 1 while the slot is in use (written by the tracer only), then u32 owner tid. */
  busy: 0,
  owner: 4,
  /** u64 set to 1 by the stub once the system call or function returned. */
  done: 8,
  /** u64 rax after the system call or function. */
  result: 16,
  /** struct timeval: how long the stub waits for the tracer before restoring by itself. */
  tvSec: 24,
  tvUsec: 32,
  /** u64 function to call (entry_call). */
  fn: 40,
  /** u64 address of the XSAVE image to restore, 0 for none (system calls leave the FPU alone). */
  image: 48,
  /** u64 the thread's signal mask to restore. */
  mask: 56,
  /** u64 length of the XSAVE image (for a tracer restoring it through ptrace). */
  imageLen: 64,
  /** Resume context: the general registers in `REG_ORDER`, then rsp, rip, flags. */
  regs: 72,
  rsp: 72 + 15 * 8,
  rip: 80 + 15 * 8,
  flags: 88 + 15 * 8,
} as const;

/** Size of the used part of a data chunk. */
export const FIELDS_SIZE = FIELD.flags + 8;

/** The general registers saved at `FIELD.regs`, in order (x86-64 register numbers in `REG_NUMBER`). */
export const REG_ORDER = [
  "rax",
  "rbx",
  "rcx",
  "rdx",
  "rsi",
  "rdi",
  "rbp",
  "r8",
  "r9",
  "r10",
  "r11",
  "r12",
  "r13",
  "r14",
  "r15",
] as const;

const REG_NUMBER: Record<(typeof REG_ORDER)[number] | "rsp", number> = {
  rax: 0,
  rcx: 1,
  rdx: 2,
  rbx: 3,
  rsp: 4,
  rbp: 5,
  rsi: 6,
  rdi: 7,
  r8: 8,
  r9: 9,
  r10: 10,
  r11: 11,
  r12: 12,
  r13: 13,
  r14: 14,
  r15: 15,
};

const NR_SELECT = SYS.select;
const NR_RT_SIGPROCMASK = SYS.rt_sigprocmask;
const SIG_SETMASK = 2;
/** Bytes below the interrupted rsp where the flags are pushed: under the 128-byte red zone. */
const FLAGS_BELOW = 144;

function le32(v: number): number[] {
  const b = Buffer.alloc(4);
  b.writeInt32LE(v);
  return [...b];
}

/** The code of one slot (position independent; identical for every slot). */
export function stubCode(): Uint8Array {
  const out: number[] = [];
  /** An instruction with a rip-relative operand at `field` of the data chunk: opcode, disp32, immediate. */
  const rip = (opcode: number[], field: number, imm: number[] = []) => {
    const end = out.length + opcode.length + 4 + imm.length;
    out.push(...opcode, ...le32(DATA_DISTANCE + field - end), ...imm);
  };
  const movFromSlot = (reg: keyof typeof REG_NUMBER, field: number) => {
    const n = REG_NUMBER[reg];
    rip([0x48 | (n >= 8 ? 0x04 : 0), 0x8b, ((n & 7) << 3) | 5], field);
  };

  // entry_syscall (0)
  out.push(0x0f, 0x05); // syscall
  out.push(0xeb, 0x06); // jmp done (over the 6-byte call)
  // entry_call (4)
  rip([0xff, 0x15], FIELD.fn); // call *fn(%rip)
  // done (10)
  rip([0x48, 0x89, 0x05], FIELD.result); // mov %rax, result(%rip)
  rip([0x48, 0xc7, 0x05], FIELD.done, le32(1)); // movq $1, done(%rip)
  out.push(0xb8, ...le32(NR_SELECT)); // mov $23, %eax
  out.push(0x31, 0xff); // xor %edi, %edi
  out.push(0x31, 0xf6); // xor %esi, %esi
  out.push(0x31, 0xd2); // xor %edx, %edx
  out.push(0x45, 0x31, 0xd2); // xor %r10d, %r10d
  rip([0x4c, 0x8d, 0x05], FIELD.tvSec); // lea tv(%rip), %r8
  out.push(0x0f, 0x05); // syscall
  // restore: FPU state
  movFromSlot("rcx", FIELD.image); // mov image(%rip), %rcx
  out.push(0x48, 0x85, 0xc9); // test %rcx, %rcx
  out.push(0x74, 0x0e); // jz over the next 14 bytes
  out.push(0xb8, ...le32(-1)); // mov $-1, %eax
  out.push(0xba, ...le32(-1)); // mov $-1, %edx
  out.push(0x48, 0x0f, 0xae, 0x29); // xrstor64 (%rcx)
  // signal mask
  out.push(0xb8, ...le32(NR_RT_SIGPROCMASK)); // mov $14, %eax
  out.push(0xbf, ...le32(SIG_SETMASK)); // mov $2, %edi
  rip([0x48, 0x8d, 0x35], FIELD.mask); // lea mask(%rip), %rsi
  out.push(0x31, 0xd2); // xor %edx, %edx
  out.push(0x41, 0xba, ...le32(8)); // mov $8, %r10d
  out.push(0x0f, 0x05); // syscall
  // flags, through the stack below the red zone
  movFromSlot("rsp", FIELD.rsp); // mov rsp(%rip), %rsp
  out.push(0x48, 0x8d, 0xa4, 0x24, ...le32(-FLAGS_BELOW)); // lea -144(%rsp), %rsp
  rip([0xff, 0x35], FIELD.flags); // push flags(%rip)
  out.push(0x9d); // popfq
  out.push(0x48, 0x8d, 0xa4, 0x24, ...le32(FLAGS_BELOW)); // lea 144(%rsp), %rsp
  // general registers (mov leaves the flags alone)
  REG_ORDER.forEach((reg, i) => {
    movFromSlot(reg, FIELD.regs + 8 * i);
  });
  rip([0xff, 0x25], FIELD.rip); // jmp *rip(%rip)
  if (out.length > CHUNK) throw new Error(`inject stub is ${out.length} bytes, more than a chunk`);
  return Uint8Array.from(out);
}

/** Offset in a code chunk of the `select` system call's return point (the wait). */
export const WAIT_RETURN = (() => {
  const code = stubCode();
  // The second `0f 05` is the select; its return point follows it.
  let seen = 0;
  for (let i = 0; i + 1 < code.length; i++)
    if (code[i] === 0x0f && code[i + 1] === 0x05 && ++seen === 2) return i + 2;
  throw new Error("inject stub has no wait");
})();

/** The assembler source of `stubCode()` (GNU as, AT&T), for the test that checks the encoding. */
export function stubAssembly(): string {
  const f = (name: keyof typeof FIELD) => `data+${FIELD[name]}`;
  const lines = [
    ".text",
    "code:",
    "  syscall",
    "  jmp done",
    `  call *${f("fn")}(%rip)`,
    "done:",
    `  mov %rax, ${f("result")}(%rip)`,
    `  movq $1, ${f("done")}(%rip)`,
    `  mov $${NR_SELECT}, %eax`,
    "  xor %edi, %edi",
    "  xor %esi, %esi",
    "  xor %edx, %edx",
    "  xor %r10d, %r10d",
    `  lea ${f("tvSec")}(%rip), %r8`,
    "  syscall",
    `  mov ${f("image")}(%rip), %rcx`,
    "  test %rcx, %rcx",
    "  jz 1f",
    "  mov $-1, %eax",
    "  mov $-1, %edx",
    "  xrstor64 (%rcx)",
    "1:",
    `  mov $${NR_RT_SIGPROCMASK}, %eax`,
    `  mov $${SIG_SETMASK}, %edi`,
    `  lea ${f("mask")}(%rip), %rsi`,
    "  xor %edx, %edx",
    "  mov $8, %r10d",
    "  syscall",
    `  mov ${f("rsp")}(%rip), %rsp`,
    `  lea -${FLAGS_BELOW}(%rsp), %rsp`,
    `  pushq ${f("flags")}(%rip)`,
    "  popfq",
    `  lea ${FLAGS_BELOW}(%rsp), %rsp`,
    ...REG_ORDER.map((r, i) => `  mov data+${FIELD.regs + 8 * i}(%rip), %${r}`),
    `  jmp *${f("rip")}(%rip)`,
    `.org ${DATA_DISTANCE}`,
    "data:",
    `.skip ${CHUNK}`,
  ];
  return `${lines.join("\n")}\n`;
}

/** The resume context, fields and image of one slot as the stub would restore them. */
export interface SlotState {
  busy: boolean;
  owner: number;
  done: boolean;
  result: bigint;
  /** The function an injected call calls (0 for a system call). */
  fn: bigint;
  mask: bigint;
  image: bigint;
  imageLen: number;
  /** The general registers, rsp, rip and flags of the resume context. */
  regs: Partial<Regs>;
}

/** Decode one data chunk. */
export function decodeSlot(b: Buffer): SlotState {
  const regs: Partial<Regs> = {};
  REG_ORDER.forEach((r, i) => {
    regs[r] = b.readBigUInt64LE(FIELD.regs + 8 * i);
  });
  regs.rsp = b.readBigUInt64LE(FIELD.rsp);
  regs.rip = b.readBigUInt64LE(FIELD.rip);
  regs.eflags = b.readBigUInt64LE(FIELD.flags);
  return {
    busy: b.readUInt32LE(FIELD.busy) !== 0,
    owner: b.readUInt32LE(FIELD.owner),
    done: b.readBigUInt64LE(FIELD.done) !== 0n,
    result: b.readBigUInt64LE(FIELD.result),
    fn: b.readBigUInt64LE(FIELD.fn),
    mask: b.readBigUInt64LE(FIELD.mask),
    image: b.readBigUInt64LE(FIELD.image),
    imageLen: Number(b.readBigUInt64LE(FIELD.imageLen)),
    regs,
  };
}

/** What a slot is filled with before an injection. */
export interface SlotFill {
  owner: number;
  fn: bigint;
  image: bigint;
  imageLen: number;
  mask: bigint;
  waitMs: number;
  resume: Regs;
}

/** Encode a data chunk for an injection (busy, not done). */
export function encodeSlot(f: SlotFill): Buffer {
  const b = Buffer.alloc(FIELDS_SIZE);
  b.writeUInt32LE(1, FIELD.busy);
  b.writeUInt32LE(f.owner, FIELD.owner);
  b.writeBigUInt64LE(BigInt(Math.floor(f.waitMs / 1000)), FIELD.tvSec);
  b.writeBigUInt64LE(BigInt((f.waitMs % 1000) * 1000), FIELD.tvUsec);
  b.writeBigUInt64LE(f.fn, FIELD.fn);
  b.writeBigUInt64LE(f.image, FIELD.image);
  b.writeBigUInt64LE(BigInt(f.imageLen), FIELD.imageLen);
  b.writeBigUInt64LE(BigInt.asUintN(64, f.mask), FIELD.mask);
  REG_ORDER.forEach((r, i) => {
    b.writeBigUInt64LE(BigInt.asUintN(64, f.resume[r]), FIELD.regs + 8 * i);
  });
  b.writeBigUInt64LE(f.resume.rsp, FIELD.rsp);
  b.writeBigUInt64LE(f.resume.rip, FIELD.rip);
  b.writeBigUInt64LE(f.resume.eflags, FIELD.flags);
  return b;
}

const ERESTARTSYS = -512n;
const ERESTARTNOINTR = -513n;
const ERESTARTNOHAND = -514n;
const ERESTART_RESTARTBLOCK = -516n;

/**
 * The context a stopped thread resumes with when its tracer lets it go with
 * the registers it has: a thread stopped inside an interrupted system call
 * has the kernel's restart applied (rax back to the call number or to
 * `restart_syscall`, rip back onto the `syscall` instruction), which is what
 * the kernel would do on the way out of the stop. The stubs restore this
 * context by themselves, so the restart must be in it.
 */
export function resumeContext(r: Regs): Regs {
  const out = { ...r, orig_rax: BigInt.asUintN(64, -1n) };
  if (BigInt.asIntN(64, r.orig_rax) < 0n) return out;
  const ret = BigInt.asIntN(64, r.rax);
  if (ret === ERESTARTSYS || ret === ERESTARTNOINTR || ret === ERESTARTNOHAND) {
    out.rax = r.orig_rax;
    out.rip = r.rip - 2n;
  } else if (ret === ERESTART_RESTARTBLOCK) {
    out.rax = BigInt(SYS.restart_syscall);
    out.rip = r.rip - 2n;
  }
  return out;
}

function arg(args: readonly bigint[], i: number): bigint {
  return BigInt.asUintN(64, args[i] ?? 0n);
}

/**
 * `base` with the registers of system call `nr(args)` set (rax; rdi, rsi, rdx,
 * r10, r8, r9), to be run from a stub's `syscall` at `pc` with stack `sp`.
 * `orig_rax` -1: the thread must not look interrupted in a system call, or the
 * kernel would "restart" into our stub (SPEC §12).
 */
export function syscallRegs(base: Regs, nr: number, args: readonly bigint[], pc: bigint, sp: bigint): Regs {
  return {
    ...base,
    rax: BigInt(nr),
    rdi: arg(args, 0),
    rsi: arg(args, 1),
    rdx: arg(args, 2),
    r10: arg(args, 3),
    r8: arg(args, 4),
    r9: arg(args, 5),
    rip: pc,
    rsp: sp,
    orig_rax: BigInt.asUintN(64, -1n),
  };
}

/**
 * `base` with the registers of a SysV call (rdi, rsi, rdx, rcx, r8, r9; al =
 * 0 vector registers for variadic callees) from a stub at `pc`, with the stack
 * pointer 16-byte aligned below the red zone of `base`'s stack.
 */
export function callRegs(base: Regs, args: readonly bigint[], pc: bigint): Regs {
  return {
    ...base,
    rdi: arg(args, 0),
    rsi: arg(args, 1),
    rdx: arg(args, 2),
    rcx: arg(args, 3),
    r8: arg(args, 4),
    r9: arg(args, 5),
    rax: 0n,
    rsp: (base.rsp - RED_ZONE_BYTES - 256n) & ~15n,
    rip: pc,
    orig_rax: BigInt.asUintN(64, -1n),
  };
}

const RED_ZONE_BYTES = 128n;

// ---- The bootstrap stub -------------------------------------------------------------------
//
// The inject page itself has to be made with system calls run in the target, before any of
// its code exists. The bootstrap stub is the same idea with what is at hand: its code is
// written into unused bytes of an executable mapping (past the end of an object's code
// segment, inside its last page: mapped, never executed, never referenced), its data block
// sits on the thread's own stack below the red zone, addressed from rsp. It runs one system
// call, records the result, waits for the tracer (bounded), then restores the thread by
// itself: signal mask, the general registers, flags, rsp, and a jump to the resume pc stored
// in the code. A tracer killed at any moment after the thread was pointed at it leaves a
// thread that carries on where it was — no single-step, no trap, no injected register left.
//
//   syscall                      rax = nr, args in rdi rsi rdx r10 r8 r9, rsp = block
//   mov %rax, RESULT(%rsp)
//   movq $1, DONE(%rsp)
//   select(0, 0, 0, 0, TV(%rsp)) the living tracer interrupts it
//   rt_sigprocmask(SIG_SETMASK, MASK(%rsp), NULL, 8)
//   rax … r15 = REGS(%rsp)
//   lea FLAGS(%rsp), %rsp; popfq  (FLAGS and RSP are adjacent)
//   mov (%rsp), %rsp
//   jmp *0(%rip); .quad resume pc
//
// FPU state needs no saving: neither the system calls nor this code touch it. The block is
// below the thread's red zone, so a signal handler run during the wait (fault signals stay
// unblocked) pushes its frame below the block; after `mov (%rsp), %rsp` nothing reads the block.

/** Offsets in the bootstrap block (from its base, the stub's rsp). */
export const BOOT_FIELD = {
  done: 0,
  result: 8,
  tvSec: 16,
  tvUsec: 24,
  mask: 32,
  regs: 40,
  flags: 40 + 15 * 8,
  rsp: 48 + 15 * 8,
} as const;

/** Bytes of the bootstrap block; the memfd name and other call data may follow it. */
export const BOOT_BLOCK_SIZE = BOOT_FIELD.rsp + 8;

/** Bytes below the interrupted rsp where the block starts: under the red zone, with room for call data after it. */
export const BOOT_BELOW = 1024n;

/** Offset of the resume pc in the bootstrap code. */
export const BOOT_TARGET = (() => bootCode(0n).length - 8)();

/** Offset of the bootstrap code's wait return point (after the `select`). */
export const BOOT_WAIT_RETURN = (() => {
  const code = bootCode(0n);
  let seen = 0;
  for (let i = 0; i + 1 < code.length; i++)
    if (code[i] === 0x0f && code[i + 1] === 0x05 && ++seen === 2) return i + 2;
  throw new Error("bootstrap stub has no wait");
})();

/** The bootstrap code, ending with `target` (the pc the thread resumes at). */
export function bootCode(target: bigint): Uint8Array {
  const out: number[] = [];
  /**
   * `op` with a `disp(%rsp)` memory operand: REX, opcode, ModRM (rm 100: SIB follows), SIB 0x24,
   * then no displacement (mod 00) for 0, disp8 (mod 01) when it fits, else disp32 (mod 10): the
   * shortest form, as GNU as picks it.
   */
  const sp = (rex: number, opcode: number[], reg: number, disp: number, imm: number[] = []) => {
    const [mod, bytes] =
      disp === 0 ? [0x00, []] : disp >= -128 && disp <= 127 ? [0x40, [disp & 0xff]] : [0x80, le32(disp)];
    out.push(rex | (reg >= 8 ? 0x04 : 0), ...opcode, mod | ((reg & 7) << 3) | 4, 0x24, ...bytes, ...imm);
  };
  out.push(0x0f, 0x05); // syscall
  sp(0x48, [0x89], REG_NUMBER.rax, BOOT_FIELD.result); // mov %rax, result(%rsp)
  sp(0x48, [0xc7], 0, BOOT_FIELD.done, le32(1)); // movq $1, done(%rsp)
  out.push(0xb8, ...le32(NR_SELECT)); // mov $23, %eax
  out.push(0x31, 0xff); // xor %edi, %edi
  out.push(0x31, 0xf6); // xor %esi, %esi
  out.push(0x31, 0xd2); // xor %edx, %edx
  out.push(0x45, 0x31, 0xd2); // xor %r10d, %r10d
  sp(0x48, [0x8d], REG_NUMBER.r8, BOOT_FIELD.tvSec); // lea tv(%rsp), %r8
  out.push(0x0f, 0x05); // syscall
  out.push(0xb8, ...le32(NR_RT_SIGPROCMASK)); // mov $14, %eax
  out.push(0xbf, ...le32(SIG_SETMASK)); // mov $2, %edi
  sp(0x48, [0x8d], REG_NUMBER.rsi, BOOT_FIELD.mask); // lea mask(%rsp), %rsi
  out.push(0x31, 0xd2); // xor %edx, %edx
  out.push(0x41, 0xba, ...le32(8)); // mov $8, %r10d
  out.push(0x0f, 0x05); // syscall
  REG_ORDER.forEach((reg, i) => {
    sp(0x48, [0x8b], REG_NUMBER[reg], BOOT_FIELD.regs + 8 * i); // mov regs+8i(%rsp), %reg
  });
  sp(0x48, [0x8d], REG_NUMBER.rsp, BOOT_FIELD.flags); // lea flags(%rsp), %rsp
  out.push(0x9d); // popfq
  out.push(0x48, 0x8b, 0x24, 0x24); // mov (%rsp), %rsp
  out.push(0xff, 0x25, ...le32(0)); // jmp *0(%rip)
  const t = Buffer.alloc(8);
  t.writeBigUInt64LE(BigInt.asUintN(64, target));
  out.push(...t);
  return Uint8Array.from(out);
}

/** The assembler source of `bootCode(target)` (GNU as, AT&T), for the test that checks the encoding. */
export function bootAssembly(target: bigint): string {
  const f = (name: keyof typeof BOOT_FIELD) => `${BOOT_FIELD[name]}`;
  const lines = [
    ".text",
    "  syscall",
    `  mov %rax, ${f("result")}(%rsp)`,
    `  movq $1, ${f("done")}(%rsp)`,
    `  mov $${NR_SELECT}, %eax`,
    "  xor %edi, %edi",
    "  xor %esi, %esi",
    "  xor %edx, %edx",
    "  xor %r10d, %r10d",
    `  lea ${f("tvSec")}(%rsp), %r8`,
    "  syscall",
    `  mov $${NR_RT_SIGPROCMASK}, %eax`,
    `  mov $${SIG_SETMASK}, %edi`,
    `  lea ${f("mask")}(%rsp), %rsi`,
    "  xor %edx, %edx",
    "  mov $8, %r10d",
    "  syscall",
    ...REG_ORDER.map((r, i) => `  mov ${BOOT_FIELD.regs + 8 * i}(%rsp), %${r}`),
    `  lea ${f("flags")}(%rsp), %rsp`,
    "  popfq",
    "  mov (%rsp), %rsp",
    "  jmp *0(%rip)",
    `  .quad 0x${BigInt.asUintN(64, target).toString(16)}`,
  ];
  return `${lines.join("\n")}\n`;
}

/** What a bootstrap block is filled with. */
export interface BootFill {
  mask: bigint;
  waitMs: number;
  /** The context the stub restores (rip is in the code, see `bootCode`). */
  resume: Regs;
}

/** Encode a bootstrap block (not done). */
export function encodeBootBlock(f: BootFill): Buffer {
  const b = Buffer.alloc(BOOT_BLOCK_SIZE);
  b.writeBigUInt64LE(BigInt(Math.floor(f.waitMs / 1000)), BOOT_FIELD.tvSec);
  b.writeBigUInt64LE(BigInt((f.waitMs % 1000) * 1000), BOOT_FIELD.tvUsec);
  b.writeBigUInt64LE(BigInt.asUintN(64, f.mask), BOOT_FIELD.mask);
  REG_ORDER.forEach((r, i) => {
    b.writeBigUInt64LE(BigInt.asUintN(64, f.resume[r]), BOOT_FIELD.regs + 8 * i);
  });
  b.writeBigUInt64LE(BigInt.asUintN(64, f.resume.eflags), BOOT_FIELD.flags);
  b.writeBigUInt64LE(BigInt.asUintN(64, f.resume.rsp), BOOT_FIELD.rsp);
  return b;
}

/** The registers, flags, rsp and mask a bootstrap block restores. */
export function decodeBootBlock(b: Buffer): {
  done: boolean;
  result: bigint;
  mask: bigint;
  regs: Partial<Regs>;
} {
  const regs: Partial<Regs> = {};
  REG_ORDER.forEach((r, i) => {
    regs[r] = b.readBigUInt64LE(BOOT_FIELD.regs + 8 * i);
  });
  regs.eflags = b.readBigUInt64LE(BOOT_FIELD.flags);
  regs.rsp = b.readBigUInt64LE(BOOT_FIELD.rsp);
  return {
    done: b.readBigUInt64LE(BOOT_FIELD.done) !== 0n,
    result: b.readBigUInt64LE(BOOT_FIELD.result),
    mask: b.readBigUInt64LE(BOOT_FIELD.mask),
    regs,
  };
}

/**
 * Where the block of a thread stopped at `pc` inside bootstrap code at `code`
 * lies, from its rsp: rsp itself until the restore moves rsp into the block
 * (`lea flags(%rsp), %rsp`), then rsp − FLAGS, then rsp − FLAGS − 8 after
 * `popfq`; undefined once rsp is the thread's own again (only the jump is left).
 */
export function bootBlockOf(code: bigint, pc: bigint, rsp: bigint): bigint | undefined {
  const image = bootCode(0n);
  const lea = image.length - 8 - 6 - 4 - 1 - 8; // lea is 8 bytes: REX 8d modrm sib disp32
  const at = Number(pc - code);
  if (at <= lea) return rsp;
  if (at === lea + 8) return rsp - BigInt(BOOT_FIELD.flags); // after lea, before popfq
  if (at === lea + 9) return rsp - BigInt(BOOT_FIELD.flags) - 8n; // after popfq
  return undefined;
}
