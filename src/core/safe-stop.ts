/**
 * The safe stop of SPEC §6, shared by actions and recovery: stop every
 * thread; check that no thread executes in, or will return into, any guarded
 * byte range; if one does, resume, wait briefly and retry until the timeout,
 * then `EBUSY` naming the function and the thread. Once safe, run the
 * caller's writes while stopped, then resume.
 *
 * The check reads each thread's registers and its stack from rsp to the top
 * of the stack mapping. Under the default conservative policy every stack word
 * that points into a guarded range counts as a possible return address (a
 * superset of `src/process/stack.ts`'s scan, which also wants the word to
 * point into executable memory), so CFI unwinding adds nothing and is skipped
 * — which keeps the stop short; `"unwound"` loads the objects' CFI first.
 * Everything that does not need the threads stopped (maps, the sorted guard
 * index, the objects' CFI) is prepared before the first stop.
 */

import { decodeRegs, REG_OFFSET, REGS_SIZE } from "../arch/host.ts";
import { XspliceError } from "../errors.ts";
import { type Mapping, mappingAt, readMaps } from "../process/maps.ts";
import { type ProcessMemory, readMemory } from "../process/memory.ts";
import { mappedObjects } from "../process/objects.ts";
import { addressesToCheck, stackFacts, type UnwindObject } from "../process/stack.ts";
import { sleepSync } from "../process/threads.ts";
import type { GuardRange } from "./patch-plan.ts";
import type { TargetSession } from "./session.ts";

/** Which return addresses the safety check trusts (see `src/process/stack.ts`). */
export type StackPolicy = "conservative" | "unwound";

/** Options of a safe stop. */
export interface SafeStopOptions {
  /**
   * Bound on reaching a stop where no thread is in a guarded range, in ms
   * (SPEC §5 `timeout`). Stopping the threads is not counted against it.
   */
  timeoutMs: number;
  policy?: StackPolicy;
  /** Wait between attempts, in ms (default 1). */
  retryDelayMs?: number;
  /**
   * Leave the threads stopped after `inStop` succeeded (default: resume).
   * The caller then commits and detaches straight from this stop: one stop
   * for the whole action. On failure the threads are always resumed.
   */
  leaveStopped?: boolean;
}

/** How the safe stop went. */
export interface SafeStopResult {
  /** Time threads were stopped in the successful attempt (quiesce, check, writes, resume), in ms. */
  window: number;
  /** Stops it took. */
  attempts: number;
  /** The successful attempt's window split into its stages, in ms (they add up to `window`). */
  stages: StopStages;
}

/** Where the time of a stop window goes, in ms. */
export interface StopStages {
  /** Stopping every thread (`quiesce`). */
  stop: number;
  /** The safety check: registers and stack of every thread. */
  check: number;
  /** The caller's work while stopped (hooks, writes). */
  act: number;
  /** Letting every thread run again. */
  resume: number;
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

/** Most stack bytes read per thread (as `stackFacts`' default): from rsp towards the top of its mapping. */
const MAX_SCAN_BYTES = 16 << 20;

/**
 * The guards prepared for the check before the stop: sorted and merged into
 * disjoint closed intervals of doubles (user addresses lie below 2^47, exact
 * in a double), so that one stack word costs two compares in the common case
 * and a binary search near a guard. `exact` is false when some guard lies
 * above 2^53; the check then takes the bigint path for every thread.
 */
export class GuardIndex {
  readonly min: number;
  readonly max: number;
  /** The upper 32 bits of `min` and `max`: most stack words are rejected on them alone. */
  readonly minHi: number;
  readonly maxHi: number;
  readonly exact: boolean;
  private readonly starts: number[] = [];
  private readonly ends: number[] = [];
  constructor(readonly guards: readonly GuardRange[]) {
    const sorted = [...guards].sort((a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : 0));
    for (const g of sorted) {
      const s = Number(g.start);
      const e = Number(g.end);
      const last = this.ends.length - 1;
      if (last >= 0 && s <= this.ends[last]! + 1) this.ends[last] = Math.max(this.ends[last]!, e);
      else {
        this.starts.push(s);
        this.ends.push(e);
      }
    }
    this.min = this.starts[0] ?? Number.POSITIVE_INFINITY;
    this.max = this.ends[this.ends.length - 1] ?? Number.NEGATIVE_INFINITY;
    this.minHi = Math.floor(this.min / 0x100000000);
    this.maxHi = Math.floor(this.max / 0x100000000);
    this.exact = guards.every((g) => g.end < 1n << 53n);
  }

  /** Some guard holds `v` in `[start, end]` (a double, so only meaningful when `exact`). */
  near(v: number): boolean {
    if (v < this.min || v > this.max) return false;
    let lo = 0;
    let hi = this.starts.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (v < this.starts[mid]!) hi = mid - 1;
      else if (v > this.ends[mid]!) lo = mid + 1;
      else return true;
    }
    return false;
  }

  /** The first guard (in the caller's order) executing `pc` would be inside: `[start, end)`. */
  atPc(pc: bigint): GuardRange | undefined {
    if (this.exact && !this.near(Number(pc))) return undefined;
    for (const g of this.guards) if (pc >= g.start && pc < g.end) return g;
    return undefined;
  }

  /** The first guard (in the caller's order) a return address `a` leads into: `[start, end]`. */
  returningTo(a: bigint): GuardRange | undefined {
    for (const g of this.guards) if (a >= g.start && a <= g.end) return g;
    return undefined;
  }
}

const indexes = new WeakMap<readonly GuardRange[], GuardIndex>();

function indexOf(guards: readonly GuardRange[]): GuardIndex {
  let index = indexes.get(guards);
  if (!index) {
    index = new GuardIndex(guards);
    indexes.set(guards, index);
  }
  return index;
}

/**
 * The conservative scan against the guards directly: the first 8-byte word of
 * the stack image `bytes` (read from an 8-aligned rsp) whose value lies in a
 * guard (`[start, end]`) and is not the pc itself (checked as a pc already),
 * with that guard; undefined when none does. This is a superset of what
 * `addressesToCheck(stackFacts(...), "conservative")` yields inside the guards:
 * the frame-pointer and scanned return addresses are words of the same image,
 * and a word need not point into executable memory to count here. Reads the
 * words as little-endian uint32 pairs (x86-64 only, like the rest of the check).
 */
export function scanForGuards(
  bytes: Uint8Array,
  pc: bigint,
  index: GuardIndex,
): { addr: bigint; guard: GuardRange } | undefined {
  const n = bytes.length >> 3;
  const words =
    bytes.byteOffset % 4 === 0
      ? new Uint32Array(bytes.buffer, bytes.byteOffset, n * 2)
      : new Uint32Array(bytes.slice(0, n * 8).buffer);
  const { min, max, minHi, maxHi } = index;
  const end = n * 2;
  for (let i = 1; i < end; i += 2) {
    const hi = words[i]!;
    if (hi < minHi || hi > maxHi) continue;
    const lo = words[i - 1]!;
    const v = hi * 0x100000000 + lo;
    if (v < min || v > max || !index.near(v)) continue;
    const a = (BigInt(hi) << 32n) | BigInt(lo);
    if (a === pc) continue;
    const guard = index.returningTo(a);
    if (guard) return { addr: a, guard };
  }
  return undefined;
}

/**
 * Look for a thread in a guarded range. A pc counts inside `[start, end)`; a
 * return address also at `end` (a call to a noreturn function as the last
 * instruction, see `hitsRange`). A stack that cannot be found in the maps
 * counts as busy: an unchecked thread could be anywhere.
 *
 * Per thread: one `PTRACE_GETREGS` and one read of the stack from rsp to the
 * top of its mapping. Under the conservative policy the words are compared
 * with the guards directly; only when one hits are the full stack facts
 * computed (from the same bytes), to name the innermost frame in the message.
 */
export function findBusy(
  session: TargetSession,
  guards: readonly GuardRange[],
  maps: { current: readonly Mapping[] },
  policy: StackPolicy = "conservative",
  objectAt?: (pc: bigint) => UnwindObject | undefined,
  mem?: ProcessMemory,
): Busy | undefined {
  if (guards.length === 0) return undefined;
  const index = indexOf(guards);
  const pid = session.pid;
  const tracee = session.tracee;
  // The registers stay raw: the check needs rip and rsp, and decoding all 27 into bigints
  // per thread was about half of a thread's check (2.5 of 5 µs). Decoded only for the facts.
  const raw = Buffer.alloc(REGS_SIZE);
  for (const tid of tracee.threads) {
    tracee.regsInto(tid, raw);
    const rip = raw.readBigUInt64LE(REG_OFFSET.rip);
    const rsp = raw.readBigUInt64LE(REG_OFFSET.rsp);
    const pcGuard = index.atPc(rip);
    if (pcGuard) return { tid, guard: pcGuard, addr: rip, atPc: true };
    let stack = mappingAt(maps.current, rsp);
    if (!stack) {
      // A thread created after the maps were read: its stack is in a new mapping.
      maps.current = readMaps(pid);
      stack = mappingAt(maps.current, rsp);
      if (!stack) return { tid, guard: guards[0]!, addr: rsp, atPc: false, unreadable: true };
    }
    const base = rsp & ~7n;
    const want = stack.end - base > BigInt(MAX_SCAN_BYTES) ? MAX_SCAN_BYTES : Number(stack.end - base);
    const bytes = mem ? mem.readView(base, want) : readMemory(pid, base, want);
    let hit: { addr: bigint; guard: GuardRange } | undefined;
    if (policy === "conservative" && index.exact) {
      hit = scanForGuards(bytes, rip, index);
      if (!hit) continue;
    }
    const regs = decodeRegs(raw);
    // The stack facts from the bytes just read (the same range `stackFacts` asks for).
    const read = (a: bigint, l: number) =>
      a === base && l === want ? bytes : mem ? mem.read(a, l) : readMemory(pid, a, l);
    const facts = stackFacts({ regs, read, maps: maps.current, objectAt, maxScanBytes: MAX_SCAN_BYTES });
    for (const a of addressesToCheck(facts, policy)) {
      if (a === regs.rip) continue;
      const g = index.returningTo(a);
      if (g) return { tid, guard: g, addr: a, atPc: false };
    }
    // The scan counts words the facts leave out (outside executable memory): still a hit.
    if (hit) return { tid, guard: hit.guard, addr: hit.addr, atPc: false };
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
  inStop: (mem: ProcessMemory) => void,
): SafeStopResult {
  return stopLoop(session, guards, opts, inStop, session.tracee.memory);
}

function stopLoop(
  session: TargetSession,
  guards: readonly GuardRange[],
  opts: SafeStopOptions,
  inStop: (mem: ProcessMemory) => void,
  mem: ProcessMemory,
): SafeStopResult {
  const pid = session.pid;
  const policy = opts.policy ?? "conservative";
  const deadline = performance.now() + opts.timeoutMs;
  const maps = { current: readMaps(pid) as readonly Mapping[] };
  indexOf(guards); // built before the stop: sorting and merging costs nothing inside it
  let objectAt: ((pc: bigint) => UnwindObject | undefined) | undefined;
  if (policy === "unwound") {
    const objects = mappedObjects(pid, { maps: [...maps.current], cache: session.context.objectFiles });
    objectAt = (pc) => {
      const o = objects.find((x) => x.contains(pc));
      return o ? { bias: o.bias, ehFrame: () => o.ehFrame() } : undefined;
    };
  }
  for (let attempt = 1; ; attempt++) {
    const t0 = performance.now();
    // Stopping is scheduling latency, not the target's doing: the session's own deadline and
    // retries (`TargetSession.stop`), never the safety timeout.
    try {
      session.stop();
    } catch (err) {
      session.run();
      throw err;
    }
    const t1 = performance.now();
    let busy: Busy | undefined;
    try {
      busy = findBusy(session, guards, maps, policy, objectAt, mem);
    } catch (err) {
      session.run();
      throw err;
    }
    if (busy) {
      session.run();
      const now = performance.now();
      if (now >= deadline)
        throw new XspliceError("EBUSY", busyMessage(busy, opts.timeoutMs), {
          tid: busy.tid,
          symbol: busy.guard.func,
          address: busy.addr,
          busy: "stack",
        });
      const wait = Math.min(opts.retryDelayMs ?? 1, deadline - now);
      session.poll();
      if (wait > 0) sleepSync(wait);
      session.poll();
      continue;
    }
    const t2 = performance.now();
    let t3 = t2;
    let ok = false;
    try {
      inStop(mem);
      t3 = performance.now();
      ok = true;
    } finally {
      if (!ok || !opts.leaveStopped) session.run();
    }
    const t4 = performance.now();
    return {
      window: t4 - t0,
      attempts: attempt,
      stages: { stop: t1 - t0, check: t2 - t1, act: t3 - t2, resume: t4 - t3 },
    };
  }
}
