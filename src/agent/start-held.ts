/**
 * Start a program held before its first instruction of its own, so that
 * payloads can be applied before `main` (SPEC §14, issue #14 item 2):
 *
 * 1. `sh` starts it as a grandchild (libuv reaps its own children with
 *    `waitpid`, which would swallow the ptrace stops, see
 *    `test/helpers/target.ts`); the inner `sh` reports its pid and waits on a
 *    pipe, is seized with `PTRACE_O_TRACEEXEC | PTRACE_O_EXITKILL`, is let go
 *    and `exec`s the program.
 * 2. At the exec stop only the kernel has run: a hardware execute breakpoint
 *    (debug register DR0 of this thread) goes at the ELF entry point
 *    (`AT_ENTRY`, checked to lie in the executable's code). No byte changes
 *    yet: a library constructor may fork, and its child, which runs on to the
 *    entry untraced, must find the program's own code there (an `int3` in
 *    memory killed it with SIGTRAP); debug registers are not inherited.
 * 3. The dynamic linker maps the libraries, runs their constructors and jumps
 *    to the entry: the breakpoint stops it. The entry's bytes become a loop
 *    that sleeps in `pause(2)` and the program is detached, parked there, so
 *    that ordinary xsplice sessions (which seize it themselves) can load
 *    payloads into it; no code of the program's own has run.
 * 4. `release()` seizes it again, puts the entry's bytes and the registers of
 *    the breakpoint stop back, and detaches: the program starts at its entry
 *    as if nothing had happened.
 *
 * While seized (steps 1–3) `EXITKILL` makes xsplice's death kill the
 * program rather than let it run unpatched; parked (between 3 and 4), a dead
 * xsplice leaves it asleep at the entry, where SIGTERM/SIGKILL still end it.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { readFileSync, statSync } from "node:fs";
import type { Readable, Writable } from "node:stream";
import { DR6_B0, DR7_EXEC_DR0, debugRegOffset, PARK_LOOP, type Regs } from "../arch/host.ts";
import { XspliceError } from "../errors.ts";
import {
  PTRACE_EVENT,
  PTRACE_O,
  ptraceCont,
  ptraceDetach,
  ptraceGetEventMsg,
  ptraceGetRegs,
  ptraceInterrupt,
  ptracePeekUser,
  ptracePokeUser,
  ptraceSeize,
  ptraceSetOptions,
  ptraceSetRegs,
  SIG,
  signalName,
  WAIT,
  type WaitStatus,
  waitTid,
} from "../process/libc.ts";
import { readMaps } from "../process/maps.ts";
import { readMemory, writeMemory } from "../process/memory.ts";

/** How long `ExecParker.abandon` waits for the program's next stop. */
const ABANDON_WAIT_MS = 50;
const ABANDON_SLEEPER = new Int32Array(new SharedArrayBuffer(4));

/** `AT_ENTRY` in the auxiliary vector (<elf.h>). */
const AT_ENTRY = 9n;

/** A program started and parked at its entry point. */
export interface HeldProgram {
  /** The program's pid. */
  pid: number;
  /** The outer `sh` that waits for it (its exit status is the program's). */
  shell: ChildProcess;
  /** The ELF entry point where it is parked. */
  entry: bigint;
  /** How long from the spawn until it was parked, in ms. */
  heldMs: number;
  /** Start the program at its entry (payloads applied meanwhile stay). Call once. */
  release(): void;
  /** Kill the program (SIGKILL). */
  kill(): void;
}

// The inner sh reports its pid on fd 3, waits for a line on fd 4, then execs the program with
// neither fd open; the outer sh gives it the original stdin (fd 5) and waits for it.
const SCRIPT = [
  "exec 5<&0",
  `/bin/sh -c 'echo $$ >&3; exec 3>&-; read _ <&4; exec 4<&- 5<&- "$@"' xsplice-run "$@" <&5 &`,
  "exec 3>&- 4<&- 5<&-",
  'wait "$!"',
].join("\n");

function readLine(stream: Readable): Promise<string> {
  return new Promise((resolve, reject) => {
    let buf = "";
    const onData = (d: Buffer) => {
      buf += d.toString("latin1");
      const nl = buf.indexOf("\n");
      if (nl >= 0) {
        stream.off("data", onData);
        resolve(buf.slice(0, nl));
      }
    };
    stream.on("data", onData);
    stream.once("end", () =>
      reject(new XspliceError("ECHILD", "the starter shell ended before giving a pid")),
    );
  });
}

function parentOf(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "latin1");
  // comm may hold spaces and parentheses: the fields start after the last ')'.
  const rest = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return Number(rest[1]);
}

/** The AT_ENTRY of `pid`, checked to lie (with the park loop after it) in an executable mapping of its program. */
export function entryOf(pid: number): bigint {
  const auxv = readFileSync(`/proc/${pid}/auxv`);
  let entry: bigint | undefined;
  for (let at = 0; at + 16 <= auxv.length; at += 16) {
    if (auxv.readBigUInt64LE(at) === AT_ENTRY) entry = auxv.readBigUInt64LE(at + 8);
  }
  if (entry === undefined) throw new XspliceError("ENOEXEC", `process ${pid} has no AT_ENTRY`, { pid });
  const end = entry + BigInt(PARK_LOOP.length);
  const m = readMaps(pid).find((x) => x.start <= entry! && end <= x.end);
  // The program's own code: an executable mapping of the very file /proc/PID/exe is.
  const exeIno = statSync(`/proc/${pid}/exe`, { bigint: true }).ino;
  if (!m?.perms.exec || m.inode !== exeIno)
    throw new XspliceError(
      "ENOEXEC",
      `entry point 0x${entry.toString(16)} of process ${pid} is not in its code`,
      {
        pid,
        address: entry,
      },
    );
  return entry;
}

/**
 * Handle one wait status of `pid`: true when `want` accepts it; other
 * signals are delivered, other stops resumed; an exit is `ECHILD`.
 */
export function onStatus(
  pid: number,
  st: WaitStatus,
  what: string,
  want: (st: WaitStatus & { kind: "stopped" }) => boolean,
): boolean {
  if (st.kind === "exited")
    throw new XspliceError("ECHILD", `the program exited (status ${st.code}) before ${what}`, { pid });
  if (st.kind === "signaled")
    throw new XspliceError("ECHILD", `the program was killed by ${signalName(st.sig)} before ${what}`, {
      pid,
    });
  if (st.kind !== "stopped") return false;
  if (want(st)) return true;
  // A signal meant for the program is delivered; group and interrupt stops are simply resumed.
  ptraceCont(pid, st.stop === "signal-delivery" ? st.sig : 0);
  return false;
}

/** Block until the next stop of `pid` that `want` accepts. */
function waitUntil(pid: number, what: string, want: (st: WaitStatus & { kind: "stopped" }) => boolean): void {
  while (!onStatus(pid, waitTid(pid), what, want));
}

/** A process parked at its entry point by `parkAtExec`. */
export interface Parked {
  entry: bigint;
  /**
   * Seize it again, put the entry's bytes and registers back, detach: it starts. Idempotent; a
   * failed seize (EPERM: another tracer holds it) changes nothing and may be retried.
   */
  release(): void;
}

/**
 * Steps 2–3 above as a machine driven by `poll()`, for a caller that must
 * keep serving other things while the program execs (the exec gate answers
 * the permission event of the program's own dynamic linker meanwhile, which
 * the kernel opens inside the same `execve`).
 */
export class ExecParker {
  private phase: "exec" | "fork-start" | "entry" | "parked" | "let-go" = "exec";
  private entry = 0n;
  private parkedAs: Parked | undefined;
  /** A child forked before the entry (`onFork`), not a process the gate seized at its exec. */
  readonly forked: boolean;
  /** What the gate learnt of an `execve` this traced process is in: is the new program a target? */
  private nextExecIsTarget: boolean | undefined;

  /**
   * Seize `pid`, which is blocked before an `execve` that `letGo` lets go on.
   * With `onFork`, a child the program forks on its way to the entry (a
   * library constructor's) is traced too and handed to `onFork` as a parker
   * of its own, to be parked at the same entry: it runs the program's `main`
   * as well, and must not run it unpatched.
   */
  constructor(
    readonly pid: number,
    letGo: (() => void) | undefined,
    private readonly onFork?: (child: ExecParker) => void,
    forkedAt?: bigint,
  ) {
    this.forked = forkedAt !== undefined;
    if (forkedAt !== undefined) {
      // Traced already (PTRACE_O_TRACEFORK attached it); its first stop is still to come.
      this.entry = forkedAt;
      this.phase = "fork-start";
      return;
    }
    ptraceSeize(pid, PTRACE_O.TRACEEXEC | PTRACE_O.EXITKILL);
    letGo?.();
  }

  /**
   * The gate saw this (traced) process `execve` a file, and whether that file
   * is a payload's target: at the exec stop it is held again for the new
   * program, or let go. Told before the exec stop can come (the gate answers
   * the permission event the `execve` waits on after telling).
   */
  willExec(isTarget: boolean): void {
    this.nextExecIsTarget = isTarget;
  }

  /** Handle what the program reported (without blocking): parked, let go (untraced), or not yet. */
  poll(): Parked | "let-go" | undefined {
    for (;;) {
      if (this.parkedAs) return this.parkedAs;
      if (this.phase === "let-go") return "let-go";
      const st = waitTid(this.pid, WAIT.WNOHANG);
      if (st.kind === "none") return undefined;
      this.onWait(st);
    }
  }

  /** Block until parked. */
  finish(): Parked {
    while (!this.parkedAs) {
      if (this.phase === "let-go")
        throw new XspliceError("ECHILD", `process ${this.pid} exec'd a program that is not a target`);
      this.onWait(waitTid(this.pid));
    }
    return this.parkedAs;
  }

  /**
   * Give up: let the program go on as it is, untraced, its entry breakpoint
   * disarmed (armed and untraced, it would die of SIGTRAP at its entry). It is
   * interrupted if it runs and let go at its next stop, waited for at most
   * `ABANDON_WAIT_MS`: longer, and it may be in a permission wait the caller's
   * own event loop answers. One that does not stop by then stays traced
   * (EXITKILL: it ends with the tracer rather than run on into a trap).
   */
  abandon(): void {
    if (this.phase === "parked") return;
    try {
      ptraceInterrupt(this.pid);
    } catch {
      return; // gone
    }
    const until = performance.now() + ABANDON_WAIT_MS;
    for (;;) {
      let st: WaitStatus;
      try {
        st = waitTid(this.pid, WAIT.WNOHANG);
      } catch {
        return; // reaped elsewhere, or gone
      }
      if (st.kind === "exited" || st.kind === "signaled") return;
      if (st.kind === "stopped") {
        const ours = st.stop === "signal-delivery" && st.sig === SIG.SIGTRAP && this.phase === "entry";
        try {
          ptracePokeUser(this.pid, debugRegOffset(7), 0n);
          ptraceDetach(this.pid, st.stop === "signal-delivery" && !ours ? st.sig : 0);
        } catch {
          // gone between the wait and the detach
        }
        return;
      }
      if (performance.now() > until) return;
      Atomics.wait(ABANDON_SLEEPER, 0, 0, 1);
    }
  }

  /** At the stop of a new program's exec: hold it for its entry (DR0), forks traced if asked. */
  private armEntry(): void {
    const pid = this.pid;
    this.entry = entryOf(pid);
    if (this.onFork) ptraceSetOptions(pid, PTRACE_O.TRACEEXEC | PTRACE_O.EXITKILL | PTRACE_O.TRACEFORK);
    ptracePokeUser(pid, debugRegOffset(0), this.entry);
    ptracePokeUser(pid, debugRegOffset(7), DR7_EXEC_DR0);
    ptraceCont(pid, 0);
    this.phase = "entry";
  }

  private onWait(st: WaitStatus): void {
    const pid = this.pid;
    if (this.phase === "exec") {
      if (!onStatus(pid, st, "exec", (x) => x.stop === "event" && x.event === PTRACE_EVENT.EXEC)) return;
      this.armEntry();
      return;
    }
    if (this.phase === "fork-start") {
      // The first stop of a child attached at its fork (debug registers are not inherited).
      if (!onStatus(pid, st, "its first stop", () => true)) return;
      ptracePokeUser(pid, debugRegOffset(0), this.entry);
      ptracePokeUser(pid, debugRegOffset(7), DR7_EXEC_DR0);
      ptraceCont(pid, 0);
      this.phase = "entry";
      return;
    }
    if (st.kind === "stopped" && st.stop === "event" && st.event === PTRACE_EVENT.FORK && this.onFork) {
      const child = Number(ptraceGetEventMsg(pid));
      this.onFork(new ExecParker(child, undefined, this.onFork, this.entry));
      ptraceCont(pid, 0);
      return;
    }
    if (st.kind === "stopped" && st.stop === "event" && st.event === PTRACE_EVENT.EXEC) {
      // It exec'd again before its entry (a constructor's execve, or a traced child's): the old
      // entry is gone with the old program. Hold the new one if it is a target, else let it go.
      if (this.nextExecIsTarget === false) {
        ptracePokeUser(pid, debugRegOffset(7), 0n);
        ptraceDetach(pid, 0);
        this.phase = "let-go";
        return;
      }
      this.nextExecIsTarget = undefined;
      this.armEntry();
      return;
    }
    let regs: Regs | undefined;
    const hit = onStatus(pid, st, "its entry point", (x) => {
      if (x.stop !== "signal-delivery" || x.sig !== SIG.SIGTRAP) return false;
      const r = ptraceGetRegs(pid);
      // An execute breakpoint is a fault: rip is at the entry, its instruction not yet run.
      if (r.rip !== this.entry || (ptracePeekUser(pid, debugRegOffset(6)) & DR6_B0) === 0n) return false;
      regs = r;
      return true;
    });
    if (!hit) return;
    ptracePokeUser(pid, debugRegOffset(7), 0n);
    ptracePokeUser(pid, debugRegOffset(6), 0n);
    // Read at the entry stop, not at the exec stop: a constructor may have changed nothing here,
    // but these are the bytes the release must put back whatever happened before.
    const original = readMemory(pid, this.entry, PARK_LOOP.length);
    this.parkedAs = parkAt(pid, pid, this.entry, original, regs!);
    this.phase = "parked";
  }
}

/**
 * Park thread `tid` of process `pid`, in a ptrace stop now: `PARK_LOOP` goes at
 * `entry` (whose bytes before any change were `original`), the thread is moved
 * there and detached, asleep in `pause(2)`. `release()` seizes it again and
 * puts the bytes and `saved` (every register it is to resume with) back. The
 * caller has cleared anything else it set on the thread (debug registers).
 */
export function parkAt(pid: number, tid: number, entry: bigint, original: Uint8Array, saved: Regs): Parked {
  writeMemory(pid, entry, PARK_LOOP);
  ptraceSetRegs(tid, { ...saved, rip: entry });
  ptraceDetach(tid, 0); // a pending SIGTRAP is not delivered: the thread sleeps in the park loop
  let released = false;
  return {
    entry,
    release() {
      if (released) return;
      // EXITKILL: a tracer killed half-way through kills the program rather than let it run
      // from half-restored bytes or registers (e.g. the entry's own code, a second time).
      // A seize that fails (another tracer holds it) leaves it parked and untouched: retryable.
      ptraceSeize(tid, PTRACE_O.EXITKILL);
      released = true;
      ptraceInterrupt(tid);
      waitUntil(tid, "release", (x) => x.stop === "interrupt");
      // orig_rax of a breakpoint stop is -1, so the interrupted pause(2) is not restarted.
      ptraceSetRegs(tid, saved);
      writeMemory(pid, entry, original);
      ptraceDetach(tid, 0);
    },
  };
}

/**
 * Seize `pid`, which is about to `execve` (blocked before it in a pipe read),
 * call `letGo` to let it go on, and return once it is parked at the new
 * program's entry point. On failure it is detached; killing it is the caller's choice.
 */
export function parkAtExec(pid: number, letGo: () => void): Parked {
  const parker = new ExecParker(pid, letGo);
  try {
    return parker.finish();
  } catch (err) {
    parker.abandon();
    throw err;
  }
}

/** Options of `startHeld`. */
export interface StartHeldOptions {
  /** Environment of the program (default this process's). */
  env?: NodeJS.ProcessEnv;
  /** stdio of the program: inherited by default (`xsplice run`), or pipes for a test. */
  stdio?: "inherit" | "pipe";
}

/**
 * Start `cmd args…` and return it parked at its entry point, libraries
 * mapped and their constructors run, none of its own code run. A program that
 * cannot be started (not found, not executable) is `ENOENT`/`ENOEXEC`.
 */
export async function startHeld(
  cmd: string,
  args: readonly string[],
  opts: StartHeldOptions = {},
): Promise<HeldProgram> {
  const t0 = performance.now();
  const io = opts.stdio ?? "inherit";
  const shell = spawn("/bin/sh", ["-c", SCRIPT, "xsplice-run", cmd, ...args], {
    stdio: [io, io, io, "pipe", "pipe"],
    env: opts.env ?? process.env,
  });
  const pidOut = shell.stdio[3] as Readable;
  const goIn = shell.stdio[4] as Writable;
  let pid = 0;
  try {
    const line = await readLine(pidOut);
    pid = Number(line);
    // The pid comes from the shell we started: check it is its child before tracing it.
    if (!Number.isSafeInteger(pid) || pid <= 0 || parentOf(pid) !== shell.pid)
      throw new XspliceError("ESRCH", `the starter shell reported '${line}', not a child of its own`);
    const parked = parkAtExec(pid, () => goIn.end("\n"));
    const heldPid = pid;
    return {
      pid,
      shell,
      entry: parked.entry,
      heldMs: performance.now() - t0,
      release: parked.release,
      kill() {
        try {
          process.kill(heldPid, "SIGKILL");
        } catch {
          // already gone
        }
      },
    };
  } catch (err) {
    if (pid > 0) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        // gone already
      }
    }
    shell.kill("SIGKILL");
    if (err instanceof XspliceError && err.errno === "ECHILD" && /exited \(status 127\)/.test(err.message))
      throw new XspliceError("ENOENT", `${cmd}: command not found`);
    if (err instanceof XspliceError && err.errno === "ECHILD" && /exited \(status 126\)/.test(err.message))
      throw new XspliceError("ENOEXEC", `${cmd}: cannot execute`);
    throw err;
  }
}
