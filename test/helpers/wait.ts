/**
 * Waiting for an observable state instead of sleeping: a test that sleeps for
 * "long enough" is right on the machine it was written on and wrong on a busy
 * one. These poll a condition until it holds; the deadline only turns a state
 * that never comes into a failure naming it, so it is generous (a busy 2-core
 * machine can take seconds to schedule a process), never a measure of speed.
 */
import { readdirSync, readFileSync } from "node:fs";

/** Default deadline of a wait: long enough for a loaded machine, short of the runner's test timeout. */
export const WAIT_MS = 30_000;

/**
 * Resolve with the first truthy value of `probe()` (sync or async), asked every
 * `everyMs`; reject naming `what` once `timeoutMs` has passed without one.
 */
export async function waitUntil<T>(
  what: string,
  probe: () => T | undefined | null | false | Promise<T | undefined | null | false>,
  opts: { timeoutMs?: number; everyMs?: number } = {},
): Promise<T> {
  const timeoutMs = opts.timeoutMs ?? WAIT_MS;
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, opts.everyMs ?? 2));
  }
}

/** Thread ids of `pid`, ascending; empty once the process is gone. */
export function threadIds(pid: number): number[] {
  try {
    return readdirSync(`/proc/${pid}/task`)
      .map(Number)
      .sort((a, b) => a - b);
  } catch {
    return [];
  }
}

/**
 * The fields of `/proc/PID/task/TID/syscall` of a thread blocked in a system
 * call (number first, pc last), or undefined while it runs or once it is gone.
 */
export function blockedSyscall(pid: number, tid: number): string[] | undefined {
  let line: string;
  try {
    line = readFileSync(`/proc/${pid}/task/${tid}/syscall`, "utf8").trim();
  } catch {
    return undefined;
  }
  return /^\d+ /.test(line) ? line.split(" ") : undefined;
}

/** nanosleep(2) and clock_nanosleep(2) on x86-64, the calls a sleeping fixture thread blocks in. */
const SLEEP_CALLS = new Set(["35", "230"]);

/**
 * Wait until `pid` has a thread that is not in `known` and sits blocked in
 * nanosleep: the thread a fixture's `sleep MS` command starts, asleep. Returns its tid.
 */
export function waitNewSleeper(pid: number, known: number[], timeoutMs?: number): Promise<number> {
  const old = new Set(known);
  return waitUntil(
    `a new thread of ${pid} asleep in nanosleep`,
    () => threadIds(pid).find((tid) => !old.has(tid) && SLEEP_CALLS.has(blockedSyscall(pid, tid)?.[0] ?? "")),
    { timeoutMs },
  );
}

/**
 * Wait until the main thread of `pid` sits blocked in nanosleep: a freshly
 * started `sleep N` (or a fixture that sleeps) is then past exec and the
 * dynamic loader, and its mappings no longer change on their own.
 */
export async function waitAsleep(pid: number, timeoutMs?: number): Promise<void> {
  await waitUntil(
    `process ${pid} asleep in nanosleep`,
    () => SLEEP_CALLS.has(blockedSyscall(pid, pid)?.[0] ?? ""),
    {
      timeoutMs,
    },
  );
}
