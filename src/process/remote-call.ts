/**
 * Running code inside a stopped thread of a traced process: one system call
 * (`remoteSyscall`) or one function call by the SysV ABI (`remoteCall`). The
 * loader maps payload memory with the first and runs hooks with the second
 * (SPEC §2 placement, §7 hooks).
 *
 * How it stays invisible (SPEC §6 "the target must never notice … even if
 * xsplice itself is killed half-way"):
 * - Both run through xsplice's inject page (`inject-page.ts`, code in
 *   `inject-stub.ts`), created once per process. Before the thread gets any
 *   injected register, its *resume context* (general registers, flags, the
 *   kernel's system-call restart applied, signal mask, and for calls the
 *   XSAVE image) is written into a slot of that page. The stub runs the call,
 *   stores the result, marks the slot done and waits in `select` (bounded by
 *   `STUB_WAIT_MS`). A living xsplice sees the done mark, interrupts the wait
 *   and restores the thread through ptrace exactly as before (the original
 *   `orig_rax`/`rax`, so an interrupted `read`/`nanosleep` restarts, SPEC
 *   §12); a dead one lets the wait time out, and the stub restores the resume
 *   context itself. Either way the thread carries on where it was.
 * - Creating the page uses the old path once: a `syscall` that already exists
 *   in the vDSO, single-stepped (`stepSyscall`). A killed xsplice inside those
 *   few steps leaves the thread with injected registers: the one documented
 *   window (docs/safety-model.md).
 * - No target byte outside the inject page and the free stack below the red
 *   zone is written.
 * - Asynchronous signals are blocked in the thread while injected code runs:
 *   they stay queued and are delivered after the restore, not in the middle.
 *   Synchronous fault signals (SEGV, BUS, ILL, FPE, TRAP, SYS) stay unblocked:
 *   the kernel resets the handler of a blocked fault signal to SIG_DFL, which
 *   would change the target for good.
 */
import { XspliceError } from "../errors.ts";
import { encodeSlot, findInjectPage, type InjectSlots, injectSlots, resumeContext } from "./inject-page.ts";
import { ENTRY_CALL, ENTRY_SYSCALL, FIELD } from "./inject-stub.ts";
import {
  errnoLabel,
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
  toErrnoName,
  WAIT,
  type WaitStatus,
  waitTid,
} from "./libc.ts";
import { readMaps } from "./maps.ts";
import { readMemory } from "./memory.ts";
import { backoff, type Tracee } from "./threads.ts";

/** Options of remote execution. */
export interface RemoteOptions {
  /** Upper bound on the injected code's run time in ms (default 1000). Past it: `ETIMEDOUT`. */
  timeoutMs?: number;
}

const DEFAULT_TIMEOUT_MS = 1000;
/**
 * How long the stub waits for its tracer after the injected code returned,
 * before it restores the thread by itself. A living xsplice collects the
 * result within microseconds; this bounds the pause a killed one causes.
 */
export const STUB_WAIT_MS = 1000;
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

/**
 * Put the thread back. FPU state and mask first, registers last: a tracer
 * killed in between leaves the thread in the stub (or at its entry), which
 * then restores the same state from its slot.
 */
function restore(tracee: Tracee, tid: number, saved: Saved): void {
  if (saved.fp) ptraceSetFpState(tid, saved.fp);
  ptraceSetSigmask(tid, saved.mask);
  tracee.setRegs(tid, saved.regs);
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
 * The bootstrap path: execute one system call by pointing the thread at a
 * `syscall` of the vDSO and single-stepping it. Used only to create the inject
 * page: a tracer killed during the step leaves the thread with injected
 * registers and the trap flag (the kernel does not clear a single-step when
 * the tracer dies; the thread then dies of SIGTRAP), so nothing else may use it.
 */
function stepSyscall(tracee: Tracee, tid: number, nr: number, args: bigint[], opts: RemoteOptions): bigint {
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
 * The raw result `r` of a system call run in thread `tid`: returned as is, or,
 * when it is a kernel error (-4095..-1, i.e. -errno), thrown as an
 * `XspliceError` with the errno's name saying `what` failed in which process.
 */
export function syscallResult(tracee: Tracee, tid: number, r: bigint, what: string): bigint {
  if (r < 0n && r >= -4095n) {
    const code = Number(-r);
    throw new XspliceError(toErrnoName(code), `${what} in process ${tracee.pid}: ${errnoLabel(code)}`, {
      pid: tracee.pid,
      tid,
    });
  }
  return r;
}

/** The inject slots of the process (creating the page through bootstrap system calls if needed). */
function slotsFor(tracee: Tracee, tid: number, opts: RemoteOptions): InjectSlots {
  const slots = injectSlots(
    tracee,
    tid,
    () => ptraceGetFpState(tid).length,
    (nr, args, what) => syscallResult(tracee, tid, stepSyscall(tracee, tid, nr, args, opts), what),
  );
  // A thread left in the stub by a killed xsplice is put back first; its slot becomes free.
  slots.finishLeftover(tid);
  return slots;
}

/**
 * Put back every stopped thread that a killed xsplice left inside the inject
 * stub (waiting out its bound before restoring itself). Until then its real
 * pc and stack are only in its slot, so a safe stop's stack check could not
 * see them: a new run calls this right after seizing. Returns how many threads
 * it put back; a process without an inject page costs one maps read.
 */
export function finishLeftoverInjections(tracee: Tracee): number {
  const page = findInjectPage(tracee.pid);
  if (!page) return 0;
  let n = 0;
  for (const tid of tracee.threads) {
    const rip = tracee.regs(tid).rip;
    if (rip < page.code || rip >= page.data) continue;
    slotsFor(tracee, tid, {}); // finds the page and finishes this thread's leftover
    n++;
  }
  return n;
}

/** What ended an injection. */
type Outcome =
  | { kind: "done"; result: bigint }
  | { kind: "signal"; sig: number; pc: bigint }
  | { kind: "timeout" };

/**
 * Wait for the injected code in `tid` to finish: its slot's done mark (then
 * the stub's wait is interrupted), a fault stop, or the deadline. Clone events
 * are recorded, other stops (a pending interrupt, a group-stop) ridden over;
 * a thread that ends is `ESRCH`.
 */
function awaitSlot(tracee: Tracee, tid: number, slots: InjectSlots, slot: number, deadline: number): Outcome {
  const doneAt = slots.dataOf(slot) + BigInt(FIELD.done);
  for (let round = 0; ; round++) {
    const st = waitTid(tid, WAIT.WNOHANG);
    if (st.kind === "exited" || st.kind === "signaled") {
      tracee.forget(tid);
      throw new XspliceError("ESRCH", `thread ${tid} ended during injected code (${st.kind})`, { tid });
    }
    if (st.kind === "stopped") {
      if (st.stop === "signal-delivery") return { kind: "signal", sig: st.sig, pc: tracee.regs(tid).rip };
      if (st.stop === "event" && st.event === PTRACE_EVENT.CLONE)
        tracee.adopt(Number(ptraceGetEventMsg(tid)));
      ptraceCont(tid, 0);
      round = 0;
      continue;
    }
    const b = slots.read(doneAt, 16);
    if (b.readBigUInt64LE(0) !== 0n) {
      interruptInjected(tid);
      return { kind: "done", result: b.readBigUInt64LE(8) };
    }
    if (performance.now() > deadline) {
      interruptInjected(tid);
      return { kind: "timeout" };
    }
    backoff(round);
  }
}

/**
 * Run injected code through the inject page: fill a slot with the thread's
 * resume context, point the thread at the slot's entry with `setup`'s
 * registers, continue it and wait. Returns with the thread stopped and
 * restored — or, when the stub had already restored it by itself (its wait
 * ran out before we looked), left as the stub left it.
 */
function inject(
  tracee: Tracee,
  tid: number,
  entry: "syscall" | "call",
  setup: Partial<Regs>,
  fn: bigint,
  opts: RemoteOptions,
): Outcome {
  const slots = slotsFor(tracee, tid, opts);
  const saved = save(tracee, tid, entry === "call");
  const slot = slots.take(tid);
  let outcome: Outcome | undefined;
  let gone = false;
  try {
    const image = saved.fp ? slots.imageOf(slot) : 0n;
    if (saved.fp) {
      if (saved.fp.length > slots.page.imageSize)
        throw new XspliceError(
          "ENOSPC",
          `thread ${tid}: FPU state of ${saved.fp.length} bytes does not fit the inject page's ${slots.page.imageSize}`,
          { tid },
        );
      slots.write(image, saved.fp);
    }
    const fill = encodeSlot({
      owner: tid,
      fn,
      image,
      imageLen: saved.fp?.length ?? 0,
      mask: saved.mask,
      waitMs: STUB_WAIT_MS,
      resume: resumeContext(saved.regs),
    });
    slots.write(slots.dataOf(slot), fill);
    const r: Regs = { ...saved.regs, ...setup };
    r.rip = slots.codeOf(slot) + BigInt(entry === "call" ? ENTRY_CALL : ENTRY_SYSCALL);
    r.orig_rax = BigInt.asUintN(64, -1n);
    tracee.setRegs(tid, r);
    ptraceSetSigmask(tid, saved.mask | INJECT_MASK);
    ptraceCont(tid, 0);
    outcome = awaitSlot(tracee, tid, slots, slot, performance.now() + (opts.timeoutMs ?? DEFAULT_TIMEOUT_MS));
    return outcome;
  } catch (err) {
    gone = err instanceof XspliceError && err.errno === "ESRCH";
    throw err;
  } finally {
    if (!gone) {
      // Done and already outside the stub: the stub restored the thread by itself; writing the
      // old registers now would undo what the thread has run since.
      const selfRestored = outcome?.kind === "done" && !slots.inCode(tracee.regs(tid).rip);
      if (!selfRestored) restore(tracee, tid, saved);
    }
    slots.release(slot);
  }
}

/**
 * Execute one system call in stopped thread `tid`: `nr` with up to six
 * arguments (rdi, rsi, rdx, r10, r8, r9). Returns the raw result; a value in
 * [-4095, -1] is an errno, which the helpers of `syscalls.ts` turn into errors.
 * Errors: `EFAULT` (a fault signal), `ETIMEDOUT`, `ESRCH` (the thread ended).
 */
export function remoteSyscall(
  tracee: Tracee,
  tid: number,
  nr: number,
  args: bigint[],
  opts: RemoteOptions = {},
): bigint {
  if (args.length > 6) throw new XspliceError("EINVAL", `system call ${nr}: more than 6 arguments`, { tid });
  const a = (i: number) => BigInt.asUintN(64, args[i] ?? 0n);
  const setup = { rax: BigInt(nr), rdi: a(0), rsi: a(1), rdx: a(2), r10: a(3), r8: a(4), r9: a(5) };
  const out = inject(tracee, tid, "syscall", setup, 0n, opts);
  if (out.kind === "done") return BigInt.asIntN(64, out.result);
  if (out.kind === "timeout")
    throw new XspliceError("ETIMEDOUT", `system call ${nr} in thread ${tid} did not return in time`, { tid });
  throw new XspliceError(
    "EFAULT",
    `system call ${nr} in thread ${tid}: ${signalName(out.sig)} at ${hex(out.pc)}`,
    {
      tid,
      address: out.pc,
    },
  );
}

/**
 * Call the function at `fn` in stopped thread `tid` with up to six integer
 * arguments (SysV: rdi, rsi, rdx, rcx, r8, r9) and return rax. The call is
 * made from the inject page's stub with the stack pointer below the red zone,
 * 16-byte aligned before the `call`. Every register, the FPU state and the
 * signal mask are restored afterwards, whatever happened — by the stub itself
 * if xsplice dies meanwhile.
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
  const a = (i: number) => BigInt.asUintN(64, args[i] ?? 0n);
  const rsp = tracee.regs(tid).rsp;
  const setup = {
    rdi: a(0),
    rsi: a(1),
    rdx: a(2),
    rcx: a(3),
    r8: a(4),
    r9: a(5),
    rax: 0n, // al = number of vector registers used, for variadic callees
    rsp: (rsp - RED_ZONE - 256n) & ~15n,
  };
  const out = inject(tracee, tid, "call", setup, fn, opts);
  if (out.kind === "done") return out.result;
  if (out.kind === "timeout")
    throw new XspliceError("ETIMEDOUT", `call of ${hex(fn)} in thread ${tid} did not return in time`, {
      tid,
      address: fn,
    });
  throw new XspliceError(
    "EFAULT",
    `call of ${hex(fn)} in thread ${tid} crashed: ${signalName(out.sig)} at pc ${hex(out.pc)}`,
    { tid, address: out.pc },
  );
}
