/**
 * Running code inside a stopped thread of a traced process: one system call
 * (`remoteSyscall`) or one function call by the SysV ABI (`remoteCall`). The
 * loader maps payload memory with the first and runs hooks with the second
 * (SPEC §2 placement, §7 hooks).
 *
 * How it stays invisible (SPEC §6 "the target must never notice … even if
 * xsplice itself is killed half-way"):
 * - Both run through xsplice's inject page (`inject-page.ts`, code in the
 *   host's `inject-stub.ts`), created once per process. Before the thread gets
 *   any injected register, its *resume context* (general registers, flags, the
 *   kernel's system-call restart applied, signal mask, and for calls the XSAVE
 *   image) is written into a slot of that page. The stub runs the call, stores
 *   the result, marks the slot done and waits in `select` (bounded by
 *   `STUB_WAIT_MS`). A living xsplice sees the done mark, interrupts the wait
 *   and restores the thread through ptrace exactly as before (the original
 *   `orig_rax`/`rax`, so an interrupted `read`/`nanosleep` restarts, SPEC
 *   §12); a dead one lets the wait time out, and the stub restores the resume
 *   context itself. Either way the thread carries on where it was.
 * - Creating the page needs system calls before the page exists: the
 *   *bootstrap stub* does them the same way, with its code in unused bytes past
 *   the end of a mapped object's code segment and its data on the thread's own
 *   stack below the red zone (`bootstrap` below). There is no single-stepping
 *   and no trap anywhere, so no moment at which a killed xsplice leaves a
 *   thread that cannot carry on by itself.
 * - No target byte outside the inject page, the bootstrap bytes (restored once
 *   the page exists) and the free stack below the red zone is written.
 * - Asynchronous signals are blocked in the thread while injected code runs:
 *   they stay queued and are delivered after the restore, not in the middle.
 *   Synchronous fault signals (SEGV, BUS, ILL, FPE, TRAP, SYS) stay unblocked:
 *   the kernel resets the handler of a blocked fault signal to SIG_DFL, which
 *   would change the target for good.
 *
 * Every wait goes through `Tracee.waitStop`/`interruptThread`: this module only
 * says which stop counts as done.
 */
import { closeSync, constants, fstatSync, openSync, readSync } from "node:fs";
import {
  BOOT_BELOW,
  BOOT_BLOCK_SIZE,
  BOOT_FIELD,
  bootBlockOf,
  bootCode,
  callRegs,
  decodeBootBlock,
  ENTRY_CALL,
  ENTRY_SYSCALL,
  encodeBootBlock,
  encodeSlot,
  FIELD,
  type Regs,
  resumeContext,
  syscallRegs,
} from "../arch/host.ts";
import { PF, PT } from "../elf/defs.ts";
import { errnoLabel, reportedErrno, XspliceError } from "../errors.ts";
import { hex } from "../hex.ts";
import {
  type BootstrapSyscalls,
  busySlotOwners,
  busySlots,
  createInjectPage,
  findInjectPage,
  type InjectSlots,
  injectPageLeftovers,
  newInjectSlots,
  openInjectPage,
  stillMapped,
} from "./inject-page.ts";
import {
  ptraceGetFpState,
  ptraceGetSigmask,
  ptraceSetFpState,
  ptraceSetSigmask,
  SIG,
  signalName,
} from "./libc.ts";
import { readMaps } from "./maps.ts";
import { pausePoint } from "./pause-point.ts";
import type { ThreadStop, Tracee } from "./threads.ts";

/** Options of remote execution. */
export interface RemoteOptions {
  /** Upper bound on the injected code's run time in ms (default 1000). Past it: `ETIMEDOUT`. */
  timeoutMs?: number;
  /**
   * Called once the code returned and the thread is restored, before its inject
   * slot is released: a caller that records "it ran" (a hook in a journal) does
   * it here, so that until then the slot itself is the proof (`injectionEvidence`).
   */
  beforeRelease?: (result: bigint) => void;
}

const DEFAULT_TIMEOUT_MS = 1000;
/**
 * How long a stub waits for its tracer after the injected code returned,
 * before it restores the thread by itself. A living xsplice collects the
 * result within microseconds; this bounds the pause a killed one causes.
 */
export const STUB_WAIT_MS = 1000;
/** How long the thread may take to be stopped again once its injected code is done. */
const INTERRUPT_MS = 5000;
const FAULT_SIGNALS = [SIG.SIGSEGV, SIG.SIGBUS, SIG.SIGILL, SIG.SIGFPE, SIG.SIGTRAP, SIG.SIGSYS];
/** Every signal blocked except the synchronous fault signals (and SIGKILL/SIGSTOP, which cannot be). */
const INJECT_MASK = FAULT_SIGNALS.reduce((m, s) => m & ~(1n << BigInt(s - 1)), (1n << 64n) - 1n);
const HELD_KEY = "remote-call";

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
}

/**
 * The raw result `r` of a system call run in thread `tid`: returned as is, or,
 * when it is a kernel error (-4095..-1, i.e. -errno), thrown as an
 * `XspliceError` with the errno's name saying `what` failed in which process.
 */
export function syscallResult(tracee: Tracee, tid: number, r: bigint, what: string): bigint {
  if (r < 0n && r >= -4095n) {
    const code = Number(-r);
    throw new XspliceError(reportedErrno(code), `${what} in process ${tracee.pid}: ${errnoLabel(code)}`, {
      pid: tracee.pid,
      tid,
    });
  }
  return r;
}

/** What ended an injection. */
type Outcome =
  | { kind: "done"; result: bigint }
  | { kind: "signal"; sig: number; pc: bigint }
  | { kind: "timeout" };

/** A fault signal stops the injected code; every other stop (a pending interrupt, a group-stop) is ridden over. */
function faultStop(st: ThreadStop): boolean {
  return st.stop === "signal-delivery";
}

/**
 * Continue `tid` into injected code and wait until it is done (`doneAt` holds
 * a non-zero done word, then the result), faults, or overruns; returns with the
 * thread stopped again.
 */
function runInjected(tracee: Tracee, tid: number, doneAt: bigint, timeoutMs: number): Outcome {
  let result: bigint | undefined;
  const idle = () => {
    const b = Buffer.from(tracee.memory.read(doneAt, 16));
    if (b.readBigUInt64LE(0) === 0n) return false;
    result = b.readBigUInt64LE(8);
    return true;
  };
  tracee.continueThread(tid);
  pausePoint("inject:running");
  const st = tracee.waitStop(tid, { deadline: performance.now() + timeoutMs, take: faultStop, idle });
  if (st !== "idle" && st !== "deadline") return { kind: "signal", sig: st.sig, pc: tracee.regs(tid).rip };
  tracee.interruptThread(tid, performance.now() + INTERRUPT_MS);
  if (st === "idle") return { kind: "done", result: result ?? 0n };
  return { kind: "timeout" };
}

// ---- The bootstrap -----------------------------------------------------------------------

/** Unused executable bytes where the bootstrap code goes, and what they held. */
interface BootSite {
  code: bigint;
  original: Uint8Array;
}

const BOOT_LEN = bootCode(0n).length;

/** A place for the bootstrap code: unused executable bytes, and the file range they come from. */
interface SiteCandidate {
  code: bigint;
  fileOffset: bigint;
  mapFile: string;
}

const EHDR_SIZE = 64;
const PHDR_SIZE = 56;

/**
 * Every bootstrap site of a process, in address order: for each mapped ELF
 * object (its headers read from its first mapping in memory — no file is
 * opened), the bytes from the end of an executable PT_LOAD (16-aligned) to the
 * end of its last page, when `BOOT_LEN` fit, lie in an executable file mapping
 * and no other segment of the object covers them. Those bytes are mapped but
 * belong to no section: never executed, never referenced. Creation uses the
 * first; a later run looks at all of them for a killed run's leftover.
 */
function bootSites(tracee: Tracee): SiteCandidate[] {
  const maps = readMaps(tracee.pid);
  const out: SiteCandidate[] = [];
  for (const head of maps) {
    if (head.offset !== 0n || head.inode === 0n || !head.perms.read) continue;
    let ehdr: Buffer;
    try {
      ehdr = Buffer.from(tracee.memory.read(head.start, EHDR_SIZE));
    } catch {
      continue;
    }
    if (ehdr.readUInt32BE(0) !== 0x7f454c46 || ehdr[4] !== 2) continue; // ELF64 only
    const phoff = ehdr.readBigUInt64LE(32);
    const phnum = ehdr.readUInt16LE(56);
    if (ehdr.readUInt16LE(54) !== PHDR_SIZE || phnum === 0 || phnum > 64) continue;
    if (phoff + BigInt(phnum * PHDR_SIZE) > head.end - head.start) continue;
    const raw = Buffer.from(tracee.memory.read(head.start + phoff, phnum * PHDR_SIZE));
    const loads = [...Array(phnum).keys()]
      .map((i) => raw.subarray(i * PHDR_SIZE, (i + 1) * PHDR_SIZE))
      .filter((ph) => ph.readUInt32LE(0) === PT.LOAD)
      .map((ph) => ({
        flags: ph.readUInt32LE(4),
        offset: ph.readBigUInt64LE(8),
        vaddr: ph.readBigUInt64LE(16),
        memsz: ph.readBigUInt64LE(40),
      }));
    const first = loads.find((l) => l.offset === 0n);
    if (!first) continue;
    const bias = head.start - (first.vaddr & ~4095n);
    const file = maps.filter((m) => m.inode === head.inode && m.dev === head.dev);
    for (const l of loads) {
      if ((l.flags & PF.X) === 0) continue;
      const end = bias + l.vaddr + l.memsz;
      const code = (end + 15n) & ~15n;
      if (code + BigInt(BOOT_LEN) > ((end + 4095n) & ~4095n)) continue;
      const m = file.find((x) => x.start <= code && code + BigInt(BOOT_LEN) <= x.end && x.perms.exec);
      if (!m) continue;
      const covered = loads.some(
        (o) => o !== l && bias + o.vaddr < code + BigInt(BOOT_LEN) && code < bias + o.vaddr + o.memsz,
      );
      if (covered) continue;
      out.push({
        code,
        fileOffset: m.offset + (code - m.start),
        mapFile: `${m.start.toString(16)}-${m.end.toString(16)}`,
      });
    }
  }
  return out;
}

function firstBootSite(tracee: Tracee): SiteCandidate {
  const site = bootSites(tracee)[0];
  if (site) return site;
  throw new XspliceError(
    "ENOSPC",
    `process ${tracee.pid}: no mapped object has ${BOOT_LEN} unused bytes after its code to bootstrap the inject page`,
    { pid: tracee.pid },
  );
}

/** What the file holds at the bootstrap site (what the site's bytes are restored to). */
function fileBytesAt(pid: number, site: SiteCandidate): Uint8Array {
  const out = new Uint8Array(BOOT_LEN);
  // The mapped file itself, through the kernel's view of the mapping (never a path the target names).
  const fd = openSync(`/proc/${pid}/map_files/${site.mapFile}`, constants.O_RDONLY | constants.O_NONBLOCK);
  try {
    if (!fstatSync(fd).isFile())
      throw new XspliceError("EINVAL", `process ${pid}: the mapping ${site.mapFile} is not a regular file`, {
        pid,
      });
    readSync(fd, out, 0, BOOT_LEN, Number(site.fileOffset));
  } finally {
    closeSync(fd);
  }
  return out;
}

/**
 * Bootstrap system calls in stopped thread `tid`, for creating the inject page.
 * The code goes to the process's boot site once (its resume pc is this
 * thread's), the block below the thread's red zone; `finish()` gives the site
 * its bytes back. Each call is kill-safe on its own (see the stub).
 */
function bootstrap(tracee: Tracee, tid: number, opts: RemoteOptions): BootstrapSyscalls & { finish(): void } {
  const saved = save(tracee, tid, false);
  const resume = resumeContext(saved.regs);
  const block = (saved.regs.rsp - BOOT_BELOW) & ~15n;
  let site: BootSite | undefined;
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const open = (): BootSite => {
    if (site) return site;
    const where = firstBootSite(tracee);
    const original = tracee.memory.read(where.code, BOOT_LEN);
    tracee.memory.write(where.code, bootCode(resume.rip));
    site = { code: where.code, original };
    pausePoint("bootstrap:site");
    return site;
  };
  return {
    scratch(bytes: Uint8Array): bigint {
      const at = block + BigInt(BOOT_BLOCK_SIZE);
      if (BigInt(BOOT_BLOCK_SIZE + bytes.length) > BOOT_BELOW - 128n)
        throw new XspliceError("EINVAL", `bootstrap call data of ${bytes.length} bytes is too long`, { tid });
      tracee.memory.write(at, bytes);
      return at;
    },
    run(nr: number, args: bigint[], what: string): bigint {
      const { code } = open();
      tracee.memory.write(block, encodeBootBlock({ mask: saved.mask, waitMs: STUB_WAIT_MS, resume }));
      let outcome: Outcome | undefined;
      try {
        tracee.setRegs(tid, syscallRegs(saved.regs, nr, args, code, block));
        ptraceSetSigmask(tid, saved.mask | INJECT_MASK);
        outcome = runInjected(tracee, tid, block + BigInt(BOOT_FIELD.done), timeoutMs);
      } finally {
        const pc = tracee.regs(tid).rip;
        // Done and already outside the stub: it restored the thread by itself.
        if (!(outcome?.kind === "done" && (pc < code || pc >= code + BigInt(BOOT_LEN))))
          restore(tracee, tid, saved);
      }
      if (outcome.kind === "done") return syscallResult(tracee, tid, BigInt.asIntN(64, outcome.result), what);
      if (outcome.kind === "timeout")
        throw new XspliceError("ETIMEDOUT", `${what} in thread ${tid} did not return in time`, { tid });
      throw new XspliceError(
        "EFAULT",
        `${what} in thread ${tid}: ${signalName(outcome.sig)} at ${hex(outcome.pc)}`,
        {
          tid,
          address: outcome.pc,
        },
      );
    },
    finish(): void {
      if (site) tracee.memory.write(site.code, site.original);
    },
  };
}

/**
 * Put back threads a killed run left in the bootstrap code, from their blocks,
 * and give the boot site the file's bytes again. Returns how many threads.
 */
function finishLeftoverBootstrap(tracee: Tracee): number {
  const stub = Buffer.from(bootCode(0n)).subarray(0, BOOT_LEN - 8);
  let n = 0;
  for (const where of bootSites(tracee)) {
    const have = Buffer.from(tracee.memory.read(where.code, BOOT_LEN));
    if (have.subarray(0, BOOT_LEN - 8).equals(stub))
      n += finishBootSite(tracee, where, have.readBigUInt64LE(BOOT_LEN - 8));
  }
  return n;
}

/** Put back the threads inside the bootstrap code at `where` (resume pc `target`), then the site's bytes. */
function finishBootSite(tracee: Tracee, where: SiteCandidate, target: bigint): number {
  let n = 0;
  for (const tid of tracee.threads) {
    const cur = tracee.regs(tid);
    if (cur.rip < where.code || cur.rip >= where.code + BigInt(BOOT_LEN)) continue;
    const at = bootBlockOf(where.code, cur.rip, cur.rsp);
    if (at === undefined) {
      tracee.setRegs(tid, { ...cur, rip: target, orig_rax: BigInt.asUintN(64, -1n) });
    } else {
      const b = decodeBootBlock(Buffer.from(tracee.memory.read(at, BOOT_BLOCK_SIZE)));
      ptraceSetSigmask(tid, b.mask);
      tracee.setRegs(tid, { ...cur, ...b.regs, rip: target, orig_rax: BigInt.asUintN(64, -1n) } as Regs);
    }
    n++;
  }
  tracee.memory.write(where.code, fileBytesAt(tracee.pid, where));
  return n;
}

// ---- The inject page ---------------------------------------------------------------------

/** The inject slots of the process (creating the page through the bootstrap if needed). */
function slotsFor(tracee: Tracee, tid: number, opts: RemoteOptions): InjectSlots {
  const held = tracee.heldState<{ slots?: InjectSlots }>(HELD_KEY, () => ({}));
  if (!held.slots || !stillMapped(tracee, held.slots.page)) {
    const found = findInjectPage(tracee.pid);
    if (found.kind === "page") held.slots = openInjectPage(tracee, found.page);
    else {
      const boot = bootstrap(tracee, tid, opts);
      try {
        const page = createInjectPage(
          tracee,
          ptraceGetFpState(tid).length,
          boot,
          found.kind === "half-made" ? found : undefined,
        );
        held.slots = newInjectSlots(tracee, page);
      } finally {
        boot.finish();
      }
    }
  }
  // A thread left in the stub by a killed xsplice is put back first; its slot becomes free.
  held.slots.finishLeftover(tid);
  return held.slots;
}

/**
 * Put back every stopped thread that a killed xsplice left inside the inject
 * stub or the bootstrap stub (waiting out its bound before restoring itself).
 * Until then its real pc and stack are only in its slot or block, so a safe
 * stop's stack check could not see them: a new run calls this right after
 * seizing. Returns how many threads it put back.
 */
export function finishLeftoverInjections(tracee: Tracee): number {
  let n = finishLeftoverBootstrap(tracee);
  const found = findInjectPage(tracee.pid);
  if (found.kind !== "page") return n;
  for (const tid of tracee.threads) {
    const rip = tracee.regs(tid).rip;
    if (rip < found.page.code || rip >= found.page.data) continue;
    slotsFor(tracee, tid, {}); // finds the page and finishes this thread's leftover
    n++;
  }
  return n;
}

/**
 * Make the inject page now when a killed creation left a half-made one or a
 * leaked descriptor (`injectPageLeftovers`): the creation removes both. The
 * process must be stopped; `tid` runs the bootstrap. Returns true when it did.
 */
export function finishLeftoverInjectPage(tracee: Tracee, tid: number): boolean {
  if (!injectPageLeftovers(tracee.pid)) return false;
  slotsFor(tracee, tid, {});
  return true;
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
  setup: (saved: Regs, pc: bigint) => Regs,
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
      tracee.memory.write(image, saved.fp);
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
    tracee.memory.write(slots.dataOf(slot), fill);
    const pc = slots.codeOf(slot) + BigInt(entry === "call" ? ENTRY_CALL : ENTRY_SYSCALL);
    tracee.setRegs(tid, setup(saved.regs, pc));
    ptraceSetSigmask(tid, saved.mask | INJECT_MASK);
    outcome = runInjected(
      tracee,
      tid,
      slots.dataOf(slot) + BigInt(FIELD.done),
      opts.timeoutMs ?? DEFAULT_TIMEOUT_MS,
    );
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
    if (outcome?.kind === "done") opts.beforeRelease?.(outcome.result);
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
  const out = inject(tracee, tid, "syscall", (r, pc) => syscallRegs(r, nr, args, pc, r.rsp), 0n, opts);
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
  const out = inject(tracee, tid, "call", (r, pc) => callRegs(r, args, pc), fn, opts);
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

/**
 * True when a killed run may have left a thread inside an injection: some
 * boot site holds the bootstrap code, or a slot of the inject page is busy
 * with its owner thread alive. Read while the process runs; only then does
 * a new run need a stop before anything else (`finishLeftoverInjections`).
 */
export function injectionLeftoversPossible(tracee: Tracee): boolean {
  const stub = Buffer.from(bootCode(0n)).subarray(0, BOOT_LEN - 8);
  for (const where of bootSites(tracee)) {
    try {
      if (Buffer.from(tracee.memory.read(where.code, BOOT_LEN - 8)).equals(stub)) return true;
    } catch {
      // unreadable: not ours
    }
  }
  const found = findInjectPage(tracee.pid);
  return found.kind === "page" && busySlotOwners(tracee, found.page).length > 0;
}

/** What a killed run's injection left in its inject slot. */
export interface InjectionTrace {
  /** The function called (0 for a system call). */
  fn: bigint;
  /** It returned (the stub marked the slot done). */
  done: boolean;
  owner: number;
  /** The owner thread still exists. */
  ownerAlive: boolean;
}

/**
 * The injections a killed run left unfinished, read from the inject page's
 * busy slots (a living tracer clears a slot when done with it). Read before
 * `finishLeftoverInjections`, which releases them: recovery uses it to tell
 * whether a hook the journal says was "running" returned (SPEC §8).
 */
export function injectionEvidence(tracee: Tracee): InjectionTrace[] {
  const found = findInjectPage(tracee.pid);
  if (found.kind !== "page") return [];
  const live = new Set(tracee.threads);
  return busySlots(tracee, found.page).map((s) => ({
    fn: s.fn,
    done: s.done,
    owner: s.owner,
    ownerAlive: live.has(s.owner),
  }));
}
