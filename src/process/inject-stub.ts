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

/** x86-64 system call numbers the stub uses. */
const NR_SELECT = 23;
const NR_RT_SIGPROCMASK = 14;
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
