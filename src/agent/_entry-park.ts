/**
 * The x86-64 code xsplice writes at a program's ELF entry point to hold it
 * there (`start-held.ts`): a breakpoint to learn that the dynamic linker is
 * done, then a parking loop that sleeps in `pause(2)` until xsplice puts the
 * original bytes and registers back. Kept apart so that another machine is a
 * sibling file (a follow-up moves it under `src/arch/x86_64/`).
 */

/** `int3`: the breakpoint. A thread that hits it stops with SIGTRAP and rip one past it. */
export const BREAKPOINT = Uint8Array.of(0xcc);

/** Bytes a thread's rip is past the breakpoint's address when it reports the trap. */
export const BREAKPOINT_PC_ADVANCE = 1n;

/**
 * `mov eax, 34 (pause); syscall; jmp back`: a thread parked here sleeps (no
 * CPU) and goes back to sleep after any signal handler; it clobbers rax, rcx
 * and r11, which are restored with every other register before it leaves.
 */
export const PARK_LOOP = Uint8Array.of(0xb8, 0x22, 0x00, 0x00, 0x00, 0x0f, 0x05, 0xeb, 0xf7);
