/**
 * The safe stop of SPEC §6, shared by actions and recovery: stop every
 * thread; check that no thread executes in, or will return into, any guarded
 * byte range; if one does, resume, wait briefly and retry until the timeout,
 * then `EBUSY` naming the function and the thread. Once safe, run the
 * caller's writes while stopped, then resume.
 *
 * The check reads each thread's registers and its stack from rsp to the top
 * of the stack mapping. Under the default conservative policy every stack word
 * that points into executable memory counts as a possible return address
 * (`src/process/stack.ts`), so CFI unwinding adds nothing and is skipped —
 * which keeps the stop short; `"unwound"` loads the objects' CFI first.
 */
import { XspliceError } from "../errors.ts";
import { type Mapping, readMaps } from "../process/maps.ts";
import { readMemory } from "../process/memory.ts";
import { mappedObjects } from "../process/objects.ts";
import { addressesToCheck, stackFacts, type UnwindObject } from "../process/stack.ts";
import { sleepSync } from "../process/threads.ts";
import { MemHandle } from "./mem-handle.ts";
import type { GuardRange } from "./patch-plan.ts";
import type { TargetSession } from "./session.ts";

/** Which return addresses the safety check trusts (see `src/process/stack.ts`). */
export type StackPolicy = "conservative" | "unwound";

/** Options of a safe stop. */
export interface SafeStopOptions {
  /** Bound on reaching a safe stop, in ms. */
  timeoutMs: number;
  policy?: StackPolicy;
  /** Wait between attempts, in ms (default 1). */
  retryDelayMs?: number;
}

/** How the safe stop went. */
export interface SafeStopResult {
  /** Time threads were stopped in the successful attempt (quiesce, check, writes, resume), in ms. */
  window: number;
  /** Stops it took. */
  attempts: number;
}

/** A thread found in a guarded range. */
export interface Busy {
  tid: number;
  guard: GuardRange;
  addr: bigint;
  /** The pc itself (else a return address). */
  atPc: boolean;
  /** The thread's stack could not be read, so it could not be checked. */
  unreadable?: boolean;
}

/**
 * Look for a thread in a guarded range. A pc counts inside `[start, end)`; a
 * return address also at `end` (a call to a noreturn function as the last
 * instruction, see `hitsRange`). A stack that cannot be found in the maps
 * counts as busy: an unchecked thread could be anywhere.
 */
export function findBusy(
  session: TargetSession,
  guards: readonly GuardRange[],
  maps: { current: readonly Mapping[] },
  policy: StackPolicy = "conservative",
  objectAt?: (pc: bigint) => UnwindObject | undefined,
  mem?: MemHandle,
): Busy | undefined {
  if (guards.length === 0) return undefined;
  const pid = session.pid;
  const read = mem
    ? (a: bigint, l: number) => mem.read(a, l)
    : (a: bigint, l: number) => readMemory(pid, a, l);
  for (const tid of session.tracee.threads) {
    const regs = session.tracee.regs(tid);
    for (const g of guards)
      if (regs.rip >= g.start && regs.rip < g.end) return { tid, guard: g, addr: regs.rip, atPc: true };
    let facts = stackFacts({ regs, read, maps: maps.current, objectAt });
    if (!facts.scanned) {
      // A thread created after the maps were read: its stack is in a new mapping.
      maps.current = readMaps(pid);
      facts = stackFacts({ regs, read, maps: maps.current, objectAt });
      if (!facts.scanned) return { tid, guard: guards[0]!, addr: regs.rsp, atPc: false, unreadable: true };
    }
    for (const a of addressesToCheck(facts, policy)) {
      if (a === regs.rip) continue;
      for (const g of guards) if (a >= g.start && a <= g.end) return { tid, guard: g, addr: a, atPc: false };
    }
  }
  return undefined;
}

/** The SPEC §10 wording: `handle_request is on the stack of thread 4247 (30 ms)`. */
export function busyMessage(b: Busy, timeoutMs: number): string {
  if (b.unreadable)
    return `the stack of thread ${b.tid} cannot be read, so it cannot be checked (${timeoutMs} ms)`;
  if (b.atPc) return `${b.guard.func} is executing in thread ${b.tid} (${timeoutMs} ms)`;
  return `${b.guard.func} is on the stack of thread ${b.tid} (${timeoutMs} ms)`;
}

/**
 * Reach a safe stop for `guards` and run `inStop` in it; threads are resumed
 * afterwards whatever happens. `EBUSY` (nothing run) when no attempt within
 * `timeoutMs` was safe; at least one attempt is made.
 */
export function safeStop(
  session: TargetSession,
  guards: readonly GuardRange[],
  opts: SafeStopOptions,
  inStop: (mem: MemHandle) => void,
): SafeStopResult {
  const mem = new MemHandle(session.pid, session.tid);
  try {
    return stopLoop(session, guards, opts, inStop, mem);
  } finally {
    mem.close();
  }
}

function stopLoop(
  session: TargetSession,
  guards: readonly GuardRange[],
  opts: SafeStopOptions,
  inStop: (mem: MemHandle) => void,
  mem: MemHandle,
): SafeStopResult {
  const pid = session.pid;
  const policy = opts.policy ?? "conservative";
  const deadline = performance.now() + opts.timeoutMs;
  const maps = { current: readMaps(pid) as readonly Mapping[] };
  let objectAt: ((pc: bigint) => UnwindObject | undefined) | undefined;
  if (policy === "unwound") {
    const objects = mappedObjects(pid, { maps: [...maps.current] });
    objectAt = (pc) => {
      const o = objects.find((x) => x.contains(pc));
      return o ? { bias: o.bias, ehFrame: () => o.ehFrame() } : undefined;
    };
  }
  let lastBusy: Busy | undefined;
  for (let attempt = 1; ; attempt++) {
    const t0 = performance.now();
    try {
      // Stopping itself gets a little slack past the deadline: a loaded machine may take a few ms.
      session.stop(Math.max(20, deadline - t0));
    } catch (err) {
      session.run();
      if (lastBusy && err instanceof XspliceError && err.errno === "EBUSY")
        throw new XspliceError("EBUSY", busyMessage(lastBusy, opts.timeoutMs), {
          tid: lastBusy.tid,
          symbol: lastBusy.guard.func,
          address: lastBusy.addr,
        });
      throw err;
    }
    let busy: Busy | undefined;
    try {
      busy = findBusy(session, guards, maps, policy, objectAt, mem);
    } catch (err) {
      session.run();
      throw err;
    }
    if (busy) {
      lastBusy = busy;
      session.run();
      const now = performance.now();
      if (now >= deadline)
        throw new XspliceError("EBUSY", busyMessage(busy, opts.timeoutMs), {
          tid: busy.tid,
          symbol: busy.guard.func,
          address: busy.addr,
        });
      const wait = Math.min(opts.retryDelayMs ?? 1, deadline - now);
      session.poll();
      if (wait > 0) sleepSync(wait);
      session.poll();
      continue;
    }
    try {
      inStop(mem);
    } finally {
      session.run();
    }
    return { window: performance.now() - t0, attempts: attempt };
  }
}
