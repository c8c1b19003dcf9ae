/**
 * What to tell a user whom the kernel refused access to a process (reading
 * /proc/PID/maps or `PTRACE_SEIZE` gave EPERM): the ways in that the kernel's
 * ptrace access rules allow, and the facts of this run that decide among them.
 * Only this process's own files are read (/proc/self/status and the Yama sysctl),
 * never a path the target names.
 */
import { readFileSync } from "node:fs";
import type { XspliceError } from "../errors.ts";

/** CAP_SYS_PTRACE (<linux/capability.h>). */
const CAP_SYS_PTRACE = 19;

/** What decides whether this run may ptrace another process. */
export interface PtraceFacts {
  uid: number;
  /** CAP_SYS_PTRACE is in this process's effective set. */
  capSysPtrace: boolean;
  /** `kernel.yama.ptrace_scope`, or undefined when Yama is not in the kernel. */
  ptraceScope: number | undefined;
}

/** The facts of this process; a file that cannot be read counts as absent. */
export function ptraceFacts(): PtraceFacts {
  let capSysPtrace = false;
  let ptraceScope: number | undefined;
  try {
    const capEff = /^CapEff:\s*([0-9a-f]+)$/m.exec(readFileSync("/proc/self/status", "utf8"))?.[1];
    if (capEff !== undefined) capSysPtrace = ((BigInt(`0x${capEff}`) >> BigInt(CAP_SYS_PTRACE)) & 1n) === 1n;
  } catch {}
  try {
    const v = Number.parseInt(readFileSync("/proc/sys/kernel/yama/ptrace_scope", "utf8"), 10);
    if (Number.isInteger(v)) ptraceScope = v;
  } catch {}
  return { uid: process.geteuid?.() ?? -1, capSysPtrace, ptraceScope };
}

/**
 * The hint, e.g. `needs root with CAP_SYS_PTRACE, or the process's owner with
 * kernel.yama.ptrace_scope 0; this run: uid 1000, ptrace_scope 1`. Yama's modes
 * (Documentation/admin-guide/LSM/Yama.rst): 0 any process of the same user, 1 only
 * descendants (xsplice is not the target's parent), 2 only CAP_SYS_PTRACE, 3 none.
 */
export function ptraceHint(f: PtraceFacts): string {
  if (f.ptraceScope !== undefined && f.ptraceScope >= 3)
    return `kernel.yama.ptrace_scope ${f.ptraceScope} forbids attaching to any process until reboot`;
  if (f.uid === 0 && f.capSysPtrace) {
    return `this run is root with CAP_SYS_PTRACE${f.ptraceScope === undefined ? "" : ` (ptrace_scope ${f.ptraceScope})`}: a security module (SELinux, AppArmor) or the process's user namespace refuses it`;
  }
  const owner =
    f.ptraceScope === undefined || f.ptraceScope === 0
      ? ", or the process's owner"
      : f.ptraceScope === 1
        ? ", or the process's owner with kernel.yama.ptrace_scope 0"
        : "";
  const here = [
    `uid ${f.uid}`,
    ...(f.uid === 0 ? ["without CAP_SYS_PTRACE"] : []),
    ...(f.ptraceScope === undefined ? [] : [`ptrace_scope ${f.ptraceScope}`]),
  ].join(", ");
  return `needs root with CAP_SYS_PTRACE${owner}; this run: ${here}`;
}

/** Whether `e` is the kernel refusing this run access to a process (not, say, a file's mode). */
export function isPtraceRefusal(e: XspliceError): boolean {
  return (
    e.errno === "EPERM" && /not allowed to read \/proc\/\d+\/|ptrace\(PTRACE_(SEIZE|ATTACH)\)/.test(e.message)
  );
}
