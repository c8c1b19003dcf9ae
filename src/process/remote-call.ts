/**
 * Running code inside a stopped thread of a traced process: one system call
 * (`remoteSyscall`) or one function call by the SysV ABI (`remoteCall`). The
 * loader maps payload memory with the first and runs hooks with the second
 * (SPEC §2 placement, §7 hooks).
 *
 * How it stays invisible (SPEC §6 "the target must not notice"):
 * - No byte of the target is modified to make a system call: the thread is
 *   pointed at a `syscall` instruction that already exists in the vDSO (or, if
 *   the vDSO has none, in another executable mapping) and single-stepped over
 *   it. Writing `0f 05 cc` over the thread's code would work too, but if
 *   xsplice died in between, the target would keep corrupted code.
 * - A function call returns to address 0, which faults with SIGSEGV at pc 0
 *   and the stack pointer just above the slot we pushed; that pair identifies
 *   the return. The only write is the 8-byte return slot below the red zone,
 *   in stack memory the ABI treats as free.
 * - All general registers, the FPU/SSE/AVX state (a called function may use
 *   them) and the signal mask are restored afterwards. While the injected code
 *   runs, `orig_rax` is -1 so the kernel does not apply a pending system-call
 *   restart to our registers; restoring the original `orig_rax`/`rax` lets an
 *   interrupted call restart afterwards (SPEC §12).
 * - Asynchronous signals are blocked in the thread while injected code runs:
 *   they stay queued and are delivered after the restore, not in the middle.
 *   Synchronous fault signals (SEGV, BUS, ILL, FPE, TRAP, SYS) stay unblocked:
 *   the kernel resets the handler of a blocked fault signal to SIG_DFL, which
 *   would change the target for good.
 */
import { XspliceError } from "../errors.ts";
import {
  PTRACE_EVENT,
  ptraceCont,
  ptraceGetEventMsg,
  ptraceGetFpState,
  ptraceGetSigmask,
  ptraceInterrupt,
  ptraceSetFpState,
  ptraceSetSigmask,
  ptraceSingleStep,
  type Regs,
  SIG,
  signalName,
  WAIT,
  type WaitStatus,
  waitTid,
} from "./libc.ts";
import { readMaps } from "./maps.ts";
import { readMemory, writeMemory } from "./memory.ts";
import { backoff, type Tracee } from "./threads.ts";

/** Options of remote execution. */
export interface RemoteOptions {
  /** Upper bound on the injected code's run time in ms (default 1000). Past it: `ETIMEDOUT`. */
  timeoutMs?: number;
}

const DEFAULT_TIMEOUT_MS = 1000;
/** x86-64 SysV red zone below rsp that leaf functions may use without moving rsp. */
const RED_ZONE = 128n;
const SYSCALL_INSN = Uint8Array.of(0x0f, 0x05);
const FAULT_SIGNALS = [SIG.SIGSEGV, SIG.SIGBUS, SIG.SIGILL, SIG.SIGFPE, SIG.SIGTRAP, SIG.SIGSYS];
/** Every signal blocked except the synchronous fault signals (and SIGKILL/SIGSTOP, which cannot be). */
const INJECT_MASK = FAULT_SIGNALS.reduce((m, s) => m & ~(1n << BigInt(s - 1)), (1n << 64n) - 1n);

const syscallSites = new WeakMap<Tracee, bigint>();

function hex(v: bigint): string {
  return `0x${v.toString(16)}`;
}

/**
 * The address of a `syscall` instruction (`0f 05`) in the target: in the vDSO
 * first (always mapped, never written by us), else in any executable mapping.
 * Any `0f 05` byte pair executes as `syscall` when jumped to, whatever
 * instruction it belongs to.
 */
export function findSyscallSite(tracee: Tracee): bigint {
  const cached = syscallSites.get(tracee);
  if (cached !== undefined) return cached;
  const maps = readMaps(tracee.pid).filter((m) => m.perms.exec && m.path !== "[vsyscall]");
  maps.sort((a, b) => Number(b.path === "[vdso]") - Number(a.path === "[vdso]"));
  for (const m of maps) {
    let bytes: Uint8Array;
    try {
      bytes = readMemory(tracee.pid, m.start, Number(m.end - m.start));
    } catch {
      continue;
    }
    const at = Buffer.from(bytes).indexOf(SYSCALL_INSN);
    if (at >= 0) {
      const site = m.start + BigInt(at);
      syscallSites.set(tracee, site);
      return site;
    }
  }
  throw new XspliceError("ENOENT", `no syscall instruction found in process ${tracee.pid}`, {
    pid: tracee.pid,
  });
}

/** Saved thread state, restored after injected code whatever happened. */
interface Saved {
  regs: Regs;
  fp?: Buffer;
  mask: bigint;
}

function save(tracee: Tracee, tid: number, withFp: boolean): Saved {
  const regs = tracee.regs(tid);
  return { regs, fp: withFp ? ptraceGetFpState(tid) : undefined, mask: ptraceGetSigmask(tid) };
}

function restore(tracee: Tracee, tid: number, saved: Saved): void {
  tracee.setRegs(tid, saved.regs);
  if (saved.fp) ptraceSetFpState(tid, saved.fp);
  ptraceSetSigmask(tid, saved.mask);
  tracee.noteTrap(tid);
}

/**
 * Wait for `tid` to stop after we restarted it, with a deadline. Clone events
 * (the called code created a thread) are recorded and the thread continued;
 * group-stops (someone SIGSTOPped the process) are ridden over; a thread that
 * exits is forgotten and reported as `ESRCH`. Returns the stop, or undefined at
 * the deadline.
 */
function waitInjected(
  tracee: Tracee,
  tid: number,
  deadline: number,
  step?: { site: bigint },
): (WaitStatus & { kind: "stopped" }) | undefined {
  for (let round = 0; ; round++) {
    const st = waitTid(tid, WAIT.WNOHANG);
    if (st.kind === "exited" || st.kind === "signaled") {
      tracee.forget(tid);
      throw new XspliceError("ESRCH", `thread ${tid} ended during injected code (${st.kind})`, { tid });
    }
    if (st.kind === "stopped") {
      if (st.stop === "event" && st.event === PTRACE_EVENT.CLONE) {
        tracee.adopt(Number(ptraceGetEventMsg(tid)));
        ptraceCont(tid, 0);
      } else if (st.stop === "event" || st.stop === "group" || st.stop === "interrupt") {
        // While single-stepping a system call, a stop that comes first (a PTRACE_INTERRUPT the
        // quiesce left pending) must not become a PTRACE_CONT: the thread would run free past the
        // `syscall` into whatever follows it and crash. Step again, or stop if the step is done.
        if (step) {
          if (tracee.regs(tid).rip !== step.site) return st;
          ptraceSingleStep(tid, 0);
        } else ptraceCont(tid, 0);
      } else return st;
      round = 0;
      continue;
    }
    if (performance.now() > deadline) return undefined;
    backoff(round);
  }
}

/** Stop a thread whose injected code overran, so its registers can be restored. */
function interruptInjected(tid: number): void {
  ptraceInterrupt(tid);
  for (let round = 0; ; round++) {
    const st = waitTid(tid, WAIT.WNOHANG);
    if (st.kind === "exited" || st.kind === "signaled")
      throw new XspliceError("ESRCH", `thread ${tid} ended during injected code`, { tid });
    if (st.kind === "stopped") {
      if (st.stop === "interrupt" || st.stop === "group") return;
      // A fault or other stop first: leave the signal undelivered and wait for the interrupt.
      ptraceCont(tid, 0);
      ptraceInterrupt(tid);
      round = 0;
      continue;
    }
    if (round > 100_000) throw new XspliceError("EBUSY", `thread ${tid} does not stop`, { tid });
    backoff(round);
  }
}

/**
 * Execute one system call in stopped thread `tid`: `nr` with up to six
 * arguments (rdi, rsi, rdx, r10, r8, r9). Returns the raw result; a value in
 * [-4095, -1] is an errno, which the helpers of `syscalls.ts` turn into errors.
 */
export function remoteSyscall(
  tracee: Tracee,
  tid: number,
  nr: number,
  args: bigint[],
  opts: RemoteOptions = {},
): bigint {
  if (args.length > 6) throw new XspliceError("EINVAL", `system call ${nr}: more than 6 arguments`, { tid });
  const site = findSyscallSite(tracee);
  const saved = save(tracee, tid, false);
  const r: Regs = { ...saved.regs };
  const a = (i: number) => BigInt.asUintN(64, args[i] ?? 0n);
  Object.assign(r, { rax: BigInt(nr), rdi: a(0), rsi: a(1), rdx: a(2), r10: a(3), r8: a(4), r9: a(5) });
  r.rip = site;
  r.orig_rax = BigInt.asUintN(64, -1n);
  let result: bigint | undefined;
  try {
    tracee.setRegs(tid, r);
    ptraceSetSigmask(tid, saved.mask | INJECT_MASK);
    ptraceSingleStep(tid, 0);
    const deadline = performance.now() + (opts.timeoutMs ?? DEFAULT_TIMEOUT_MS);
    const st = waitInjected(tracee, tid, deadline, { site });
    if (!st) {
      interruptInjected(tid);
      throw new XspliceError("ETIMEDOUT", `system call ${nr} in thread ${tid} did not return in time`, {
        tid,
      });
    }
    const after = tracee.regs(tid);
    const stepped = st.sig === SIG.SIGTRAP || st.stop !== "signal-delivery";
    if (!stepped || after.rip !== site + 2n)
      throw new XspliceError(
        "EFAULT",
        `system call ${nr} in thread ${tid}: ${signalName(st.sig)} at ${hex(after.rip)}`,
        { tid, address: after.rip },
      );
    result = BigInt.asIntN(64, after.rax);
  } finally {
    restore(tracee, tid, saved);
  }
  return result;
}

/**
 * Call the function at `fn` in stopped thread `tid` with up to six integer
 * arguments (SysV: rdi, rsi, rdx, rcx, r8, r9) and return rax. The stack
 * pointer is moved below the red zone and 16-byte aligned at the call; the
 * return address is 0. Every register, the FPU state and the signal mask are
 * restored afterwards, whatever happened.
 *
 * Errors: `ETIMEDOUT` when it runs past `timeoutMs`; `EFAULT` naming the
 * signal and pc when the code crashes (the signal is not delivered, so the
 * process survives); `ESRCH` when the thread ends.
 */
export function remoteCall(
  tracee: Tracee,
  tid: number,
  fn: bigint,
  args: bigint[],
  opts: RemoteOptions = {},
): bigint {
  if (args.length > 6) throw new XspliceError("EINVAL", `call of ${hex(fn)}: more than 6 arguments`, { tid });
  const saved = save(tracee, tid, true);
  const r: Regs = { ...saved.regs };
  const a = (i: number) => BigInt.asUintN(64, args[i] ?? 0n);
  Object.assign(r, { rdi: a(0), rsi: a(1), rdx: a(2), rcx: a(3), r8: a(4), r9: a(5) });
  // At function entry (rsp + 8) is 16-byte aligned (psABI §3.2.2); the 8 bytes at rsp are the return address.
  const aligned = (saved.regs.rsp - RED_ZONE - 256n) & ~15n;
  r.rsp = aligned - 8n;
  r.rip = fn;
  r.rax = 0n; // al = number of vector registers used, for variadic callees
  r.orig_rax = BigInt.asUintN(64, -1n);
  let result: bigint | undefined;
  try {
    // Return slot = 0: returning jumps to address 0 and faults there.
    writeMemory(tracee.pid, r.rsp, new Uint8Array(8), { tid });
    tracee.setRegs(tid, r);
    ptraceSetSigmask(tid, saved.mask | INJECT_MASK);
    ptraceCont(tid, 0);
    const deadline = performance.now() + (opts.timeoutMs ?? DEFAULT_TIMEOUT_MS);
    const st = waitInjected(tracee, tid, deadline);
    if (!st) {
      interruptInjected(tid);
      throw new XspliceError("ETIMEDOUT", `call of ${hex(fn)} in thread ${tid} did not return in time`, {
        tid,
        address: fn,
      });
    }
    const after = tracee.regs(tid);
    const returned = st.sig === SIG.SIGSEGV && after.rip === 0n && after.rsp === r.rsp + 8n;
    if (!returned)
      throw new XspliceError(
        "EFAULT",
        `call of ${hex(fn)} in thread ${tid} crashed: ${signalName(st.sig)} at pc ${hex(after.rip)}`,
        { tid, address: after.rip },
      );
    result = after.rax;
  } finally {
    restore(tracee, tid, saved);
  }
  return result;
}
