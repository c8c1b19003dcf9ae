/**
 * The x86-64 code and registers xsplice uses to hold a program before its
 * own code runs (`src/agent/start-held.ts`, `src/agent/library-parker.ts`):
 * a hardware execute breakpoint (debug registers, per thread, not inherited
 * by a child) to stop at the entry point or in the dynamic linker without
 * changing a byte, and a parking loop that sleeps in `pause(2)` until xsplice
 * puts the original bytes and registers back.
 */

/**
 * `mov eax, 34 (pause); syscall; jmp back`: a thread parked here sleeps (no
 * CPU) and goes back to sleep after any signal handler; it clobbers rax, rcx
 * and r11, which are restored with every other register before it leaves.
 */
export const PARK_LOOP = Uint8Array.of(0xb8, 0x22, 0x00, 0x00, 0x00, 0x0f, 0x05, 0xeb, 0xf7);

/**
 * `offsetof(struct user, u_debugreg)` (<sys/user.h>, x86-64): where
 * `PTRACE_PEEKUSER`/`PTRACE_POKEUSER` reach debug register 0; DRn is 8n further.
 */
export const DEBUGREG_OFFSET = 848n;

/** The `struct user` offset of debug register `n` (0–7). */
export function debugRegOffset(n: 0 | 1 | 2 | 3 | 6 | 7): bigint {
  return DEBUGREG_OFFSET + 8n * BigInt(n);
}

/**
 * DR7 with only L0 set: DR0 armed for this thread, as an execute breakpoint
 * (R/W0 = 00, LEN0 = 00). It is a fault: the thread stops with SIGTRAP and rip
 * *at* the address, before the instruction runs.
 */
export const DR7_EXEC_DR0 = 1n;

/** DR6 bit B0: the stop was DR0's breakpoint. */
export const DR6_B0 = 1n;
