/**
 * Who already traces a process. Linux allows one tracer per thread, so a
 * process under gdb or strace cannot be seized; saying which program holds it
 * turns a bare `EPERM` from `PTRACE_SEIZE` into an actionable message.
 */
import { readProcFile } from "./maps.ts";

/** The `TracerPid` of `/proc/PID/status`: the pid tracing this process, 0 when none. `ESRCH` when gone. */
export function tracerOf(pid: number): number {
  const status = readProcFile(pid, "status");
  const m = /^TracerPid:\s*(\d+)$/m.exec(status);
  return m ? Number(m[1]) : 0;
}

/** The tracer of `pid` with its command name, or undefined when the process is not traced. */
export interface TracerInfo {
  pid: number;
  /** `/proc/TRACER/comm`, or `"?"` when the tracer is gone or unreadable. */
  comm: string;
}

/** The tracer of `pid` and its name, or undefined if none. */
export function tracerInfo(pid: number): TracerInfo | undefined {
  const tracer = tracerOf(pid);
  if (tracer === 0) return undefined;
  let comm = "?";
  try {
    comm = readProcFile(tracer, "comm").trim();
  } catch {
    // The tracer may exit between the two reads; the pid alone is still useful.
  }
  return { pid: tracer, comm };
}

/** A message fragment for a failed seize: `already traced by PID 812 (gdb)`, or undefined when not traced. */
export function describeTracer(pid: number): string | undefined {
  const t = tracerInfo(pid);
  return t ? `already traced by PID ${t.pid} (${t.comm})` : undefined;
}
