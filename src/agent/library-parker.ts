/**
 * Hold one thread that is opening a library target until the dynamic linker
 * has mapped it, then park it (docs/agent.md, "Library targets at start-up
 * and at `dlopen`"), as a machine driven by `poll()` so the gate keeps
 * answering permission events meanwhile:
 *
 * 1. Constructed while the thread is blocked in the `FAN_OPEN_PERM` wait of
 *    its `openat`: seized with `EXITKILL` and interrupted, then the caller
 *    allows the open. The wait is not interruptible, so the thread reports the
 *    interrupt stop right after `openat` returns.
 * 2. At that stop its `rip` must be in the dynamic linker's code (a linker,
 *    `cat`, another xsplice open the file too): anything else is let go at once.
 * 3. A hardware execute breakpoint on `_dl_debug_state` (DR0/DR7 of this
 *    thread only; no byte of the process changes, so no other thread can meet
 *    it). At each hit `_r_debug.r_state` is read: `RT_CONSISTENT` with the
 *    opened file mapped is the moment (the library is in the link map, before
 *    `dlopen` returns and before `main`); consistent without it mapped means
 *    the linker opened it and gave up on it: let go.
 * 4. Parked at the program's ELF entry as the exec gate parks (`parkAt`):
 *    registers saved at `_dl_debug_state`, `PARK_LOOP` at the entry, DR7
 *    cleared, detached. The release puts bytes and registers back.
 *
 * DR7 is cleared before every detach. Seized (1–3), a dead gate kills the
 * process (`EXITKILL`); parked (4), it sleeps at the entry holding the
 * linker's lock, killable, until released.
 */
import { DR6_B0, DR7_EXEC_DR0, debugRegOffset, PARK_LOOP, type Regs } from "../arch/host.ts";
import {
  PTRACE_O,
  ptraceCont,
  ptraceDetach,
  ptraceGetRegs,
  ptraceInterrupt,
  ptracePeekUser,
  ptracePokeUser,
  ptraceSeize,
  SIG,
  WAIT,
  type WaitStatus,
  waitTid,
} from "../process/libc.ts";
import { readMaps } from "../process/maps.ts";
import { readMemory } from "../process/memory.ts";
import { type DynamicLinker, inLinkerCode, R_STATE_OFFSET, RT_CONSISTENT } from "./dynamic-linker.ts";
import { entryOf, type Parked, parkAt } from "./start-held.ts";

/** How a library park ended: parked, or let go (with why) and no longer traced. */
export type LibraryParkResult = { kind: "parked"; parked: Parked } | { kind: "let-go"; why: string };

/** The file the thread opened, as `/proc/PID/maps` prints its identity. */
export interface OpenedFile {
  /** `major:minor` in hex, as in maps. */
  dev: string;
  inode: bigint;
}

/** `st_dev` as `/proc/PID/maps` prints it (`%02x:%02x` of the kernel's major and minor). */
export function devString(dev: bigint): string {
  const major = ((dev >> 8n) & 0xfffn) | ((dev >> 32n) & ~0xfffn);
  const minor = (dev & 0xffn) | ((dev >> 12n) & ~0xffn);
  return `${major.toString(16).padStart(2, "0")}:${minor.toString(16).padStart(2, "0")}`;
}

/** One opener thread on its way from `openat` to parked (see the module comment). */
export class LibraryParker {
  private phase: "opening" | "linker" | "abandoning" = "opening";
  private result: LibraryParkResult | undefined;

  /** Seize and interrupt `tid` of process `pid`, blocked in the permission wait that `letGo` answers. */
  constructor(
    readonly pid: number,
    readonly tid: number,
    private readonly ld: DynamicLinker,
    private readonly file: OpenedFile,
    letGo: () => void,
  ) {
    ptraceSeize(tid, PTRACE_O.EXITKILL);
    try {
      ptraceInterrupt(tid);
    } catch (err) {
      ptraceDetach(tid, 0);
      throw err;
    }
    letGo();
  }

  /** Handle what the thread reported (without blocking); the result once there is one. */
  poll(): LibraryParkResult | undefined {
    for (;;) {
      if (this.result) return this.result;
      const st = waitTid(this.tid, WAIT.WNOHANG);
      if (st.kind === "none") return undefined;
      this.onWait(st);
    }
  }

  /**
   * Give up: the thread is interrupted and let go (DR7 cleared, detached) at
   * its next stop, which a later `poll()` handles. Never blocks: the thread may
   * be in another permission wait this very gate has to answer.
   */
  abandon(): void {
    if (this.result) return;
    this.phase = "abandoning";
    try {
      ptraceInterrupt(this.tid);
    } catch {
      // gone: the next poll sees its exit
    }
  }

  /** Let it go now, if it is in a stop (after an unexpected error); quiet when that fails. */
  letGoNow(why: string): void {
    try {
      ptracePokeUser(this.tid, debugRegOffset(7), 0n);
    } catch {
      // not in a stop, or gone
    }
    try {
      ptraceDetach(this.tid, 0);
    } catch {
      // idem; EXITKILL still holds until the gate exits
    }
    this.result = { kind: "let-go", why };
  }

  private detach(why: string, sig = 0): void {
    ptracePokeUser(this.tid, debugRegOffset(7), 0n);
    ptraceDetach(this.tid, sig);
    this.result = { kind: "let-go", why };
  }

  private onWait(st: WaitStatus): void {
    const tid = this.tid;
    if (st.kind === "exited" || st.kind === "signaled") {
      this.result = { kind: "let-go", why: "it ended" };
      return;
    }
    if (st.kind !== "stopped") return;
    const pending = st.stop === "signal-delivery" ? st.sig : 0;
    if (this.phase === "abandoning") {
      this.detach("let go unparked", pending === SIG.SIGTRAP ? 0 : pending);
      return;
    }
    if (this.phase === "opening") {
      if (st.stop !== "interrupt") {
        ptraceCont(tid, pending); // a signal first: delivered; the interrupt stop follows
        return;
      }
      const regs = ptraceGetRegs(tid);
      if (!inLinkerCode(this.ld, regs.rip)) {
        this.detach(`opened by code at 0x${regs.rip.toString(16)}, not the dynamic linker's`);
        return;
      }
      ptracePokeUser(tid, debugRegOffset(0), this.ld.debugState);
      ptracePokeUser(tid, debugRegOffset(7), DR7_EXEC_DR0);
      ptraceCont(tid, 0);
      this.phase = "linker";
      return;
    }
    // phase "linker": only DR0's SIGTRAP at _dl_debug_state is ours.
    let regs: Regs | undefined;
    if (pending === SIG.SIGTRAP) {
      const r = ptraceGetRegs(tid);
      const dr6 = ptracePeekUser(tid, debugRegOffset(6));
      if (r.rip === this.ld.debugState && (dr6 & DR6_B0) !== 0n) regs = r;
    }
    if (!regs) {
      ptraceCont(tid, st.stop === "interrupt" || st.stop === "group" ? 0 : pending);
      return;
    }
    ptracePokeUser(tid, debugRegOffset(6), 0n);
    const state = Buffer.from(readMemory(this.pid, this.ld.rDebug + R_STATE_OFFSET, 4)).readInt32LE(0);
    if (state !== RT_CONSISTENT) {
      ptraceCont(tid, 0); // RT_ADD/RT_DELETE: the linker is not done; the SIGTRAP is not delivered
      return;
    }
    const mapped = readMaps(this.pid).some((m) => m.inode === this.file.inode && m.dev === this.file.dev);
    if (!mapped) {
      this.detach("the dynamic linker did not map it");
      return;
    }
    ptracePokeUser(tid, debugRegOffset(7), 0n);
    const entry = entryOf(this.pid);
    const original = readMemory(this.pid, entry, PARK_LOOP.length);
    this.result = { kind: "parked", parked: parkAt(this.pid, tid, entry, original, regs) };
  }
}
