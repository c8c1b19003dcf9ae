/**
 * The descriptors a process holds, as `/proc/PID/fd` shows them: what a
 * killed xsplice may have left open in a target (a memfd it created and had
 * not yet closed) is found here by the name the kernel reports for it.
 */
import { readdirSync, readlinkSync } from "node:fs";

/** Descriptors of `pid` whose `/proc/PID/fd` link starts with `prefix`; none when the process is gone. */
export function descriptorsOpenOn(pid: number, prefix: string): number[] {
  const out: number[] = [];
  let names: string[];
  try {
    names = readdirSync(`/proc/${pid}/fd`);
  } catch {
    return out;
  }
  for (const n of names) {
    try {
      if (readlinkSync(`/proc/${pid}/fd/${n}`).startsWith(prefix)) out.push(Number(n));
    } catch {
      // closed meanwhile
    }
  }
  return out;
}
