/**
 * Start a program held before its first instruction of its own, so that
 * payloads can be applied before `main` (SPEC §14, issue #14 item 2):
 *
 * 1. `sh` starts it as a grandchild (libuv reaps its own children with
 *    `waitpid`, which would swallow the ptrace stops, see
 *    `test/helpers/target.ts`); the inner `sh` reports its pid and waits on a
 *    pipe, is seized with `PTRACE_O_TRACEEXEC | PTRACE_O_EXITKILL`, is let go
 *    and `exec`s the program.
 * 2. At the exec stop only the kernel has run: a breakpoint goes at the ELF
 *    entry point (`AT_ENTRY`, checked to lie in the executable's code).
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
import { readFileSync } from "node:fs";
import type { Readable, Writable } from "node:stream";
import type { Regs } from "../arch/host.ts";
import { XspliceError } from "../errors.ts";
import {
  PTRACE_EVENT,
  PTRACE_O,
  ptraceCont,
  ptraceDetach,
  ptraceGetRegs,
  ptraceInterrupt,
  ptraceSeize,
  ptraceSetRegs,
  SIG,
  signalName,
  type WaitStatus,
  waitTid,
} from "../process/libc.ts";
import { readMaps } from "../process/maps.ts";
import { readMemory, writeMemory } from "../process/memory.ts";
import { BREAKPOINT, BREAKPOINT_PC_ADVANCE, PARK_LOOP } from "./_entry-park.ts";

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
function entryOf(pid: number): bigint {
  const auxv = readFileSync(`/proc/${pid}/auxv`);
  let entry: bigint | undefined;
  for (let at = 0; at + 16 <= auxv.length; at += 16) {
    if (auxv.readBigUInt64LE(at) === AT_ENTRY) entry = auxv.readBigUInt64LE(at + 8);
  }
  if (entry === undefined) throw new XspliceError("ENOEXEC", `process ${pid} has no AT_ENTRY`, { pid });
  const end = entry + BigInt(PARK_LOOP.length);
  const m = readMaps(pid).find((x) => x.start <= entry! && end <= x.end);
  if (!m || !m.perms.exec || m.inode === 0n)
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

/** Wait for the next stop of `pid` that `want` accepts; other signals are delivered, other stops resumed. */
function waitUntil(pid: number, what: string, want: (st: WaitStatus & { kind: "stopped" }) => boolean): void {
  for (;;) {
    const st = waitTid(pid);
    if (st.kind === "exited")
      throw new XspliceError("ECHILD", `the program exited (status ${st.code}) before ${what}`, { pid });
    if (st.kind === "signaled")
      throw new XspliceError("ECHILD", `the program was killed by ${signalName(st.sig)} before ${what}`, {
        pid,
      });
    if (st.kind !== "stopped") continue;
    if (want(st)) return;
    // A signal meant for the program is delivered; group and interrupt stops are simply resumed.
    ptraceCont(pid, st.stop === "signal-delivery" ? st.sig : 0);
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
    ptraceSeize(pid, PTRACE_O.TRACEEXEC | PTRACE_O.EXITKILL);
    goIn.end("\n");
    waitUntil(pid, "exec", (st) => st.stop === "event" && st.event === PTRACE_EVENT.EXEC);
    const entry = entryOf(pid);
    const original = readMemory(pid, entry, PARK_LOOP.length);
    writeMemory(pid, entry, BREAKPOINT);
    ptraceCont(pid, 0);
    let regs: Regs | undefined;
    waitUntil(pid, "its entry point", (st) => {
      if (st.stop !== "signal-delivery" || st.sig !== SIG.SIGTRAP) return false;
      const r = ptraceGetRegs(pid);
      if (r.rip !== entry + BREAKPOINT_PC_ADVANCE) return false;
      regs = r;
      return true;
    });
    const saved: Regs = { ...regs!, rip: entry };
    writeMemory(pid, entry, PARK_LOOP);
    ptraceSetRegs(pid, saved);
    ptraceDetach(pid, 0); // the SIGTRAP is not delivered: the program sleeps in the park loop
    const heldMs = performance.now() - t0;
    let released = false;
    const heldPid = pid;
    return {
      pid,
      shell,
      entry,
      heldMs,
      release() {
        if (released) return;
        released = true;
        ptraceSeize(heldPid, 0);
        ptraceInterrupt(heldPid);
        waitUntil(heldPid, "release", (st) => st.stop === "interrupt");
        writeMemory(heldPid, entry, original);
        ptraceSetRegs(heldPid, saved);
        ptraceDetach(heldPid, 0);
      },
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
