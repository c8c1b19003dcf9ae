/**
 * Carrying out APPLY, REVERT and REPLACE (SPEC §3–§7) on a held target, as
 * one transaction: a straight sequence of phases that ends in one tagged
 * outcome, settled (committed to the registry) in one place, `settle`.
 * Decide, then act (STYLE: Xen's `livepatch_action` / `livepatch_do_action`):
 *
 * 1. decide — threads running: the plan (`actions.ts`: state table,
 *    dependencies), the payload's regions mapped and intact, expectations
 *    (livepatch format, SPEC §1), the writes computed from the current code
 *    (`patch-plan.ts`). A refusal here is the outcome `refused`.
 * 2. pre-hooks (SPEC §7), in a short stop of their own when there are any; a
 *    veto is `refused`.
 * 3. journal — a registry commit that sets rc = -EAGAIN on every payload
 *    involved (GET from another shell reports it, SPEC §5) and records every
 *    write with its before/after bytes (SPEC §8).
 * 4. the safe stop (SPEC §6): every thread stopped; none may execute in, or
 *    return into, a guarded range (the whole old function), else resume,
 *    wait, retry until the timeout, then `EBUSY` — `refused`, nothing
 *    written. Once safe: load hooks, the writes (spans: read, check every
 *    `before`, write, read back), unload hooks, each hook journaled as it
 *    runs. Success is `done`, settled *inside* the stop (the journal cleared
 *    in the same commit that records the new states); a failure undoes the
 *    writes (`refused`), or, when even that fails, is `stuck`: the journal
 *    stays for the next run to roll back. The threads stay stopped after a
 *    success, so the caller detaches straight from this stop.
 * 5. post-hooks with the outcome in the payload struct's rc — after a
 *    failure too, once the pre-hooks allowed the action; never after a veto.
 *
 * An `execve` seen at any point ends the action at once (the Tracee refuses
 * every later step): the registry and code it worked on are gone with the
 * old program, and nothing is written into the new one (issue #11 item 1).
 */

import { createHash } from "node:crypto";
import { LIVE_PATCHING_FLAG, livePatchingWarning } from "../elf/dwarf-producer.ts";
import { ERRNO, XspliceError } from "../errors.ts";
import { fromHexBytes, hex, hexBytes } from "../hex.ts";
import { mappedExactly, readMaps } from "../process/maps.ts";
import type { ProcessMemory } from "../process/memory.ts";
import { mappedObjects } from "../process/objects.ts";
import { pausePoint } from "../process/pause-point.ts";
import { type StopLedger, sleepSync } from "../process/threads.ts";
import {
  type ActionFlags,
  type Cmd,
  commitApplied,
  commitRc,
  commitReverted,
  type Plan,
  plan as planAction,
} from "./actions.ts";
import {
  type HookKind,
  hasHook,
  hookAddresses,
  hookFailure,
  pairRanHooks,
  runHooks,
  type StopHookKind,
  setStructRc,
} from "./hooks.ts";
import { journalWrites, type PatchPlan, type PatchSpan, planPatches } from "./patch-plan.ts";
import type { Journal, JournalHook, PayloadRecord, RegistryState, State } from "./registry/records.ts";
import { type StackPolicy, type StopStages, safeStop } from "./safe-stop.ts";
import { type OpenOptions, openTarget, type TargetSession } from "./session.ts";

export type { StackPolicy, StopStages } from "./safe-stop.ts";

/** Options of an action. */
export interface ExecuteOptions {
  /** Bound on reaching a safe stop, in ms (SPEC §5 default 30); also bounds each hook call. */
  timeoutMs?: number;
  /** Stack policy of the safety check; default conservative (SPEC §6). */
  policy?: StackPolicy;
  /** Wait between attempts at a safe stop, in ms (default 1). */
  retryDelayMs?: number;
  /**
   * Leave the threads stopped after the action's last stop, for a caller that
   * closes the session right away: it then detaches from that stop, and the
   * action costs the target one stop instead of two (default false: the
   * threads run again before the action returns).
   */
  leaveStopped?: boolean;
}

/** What an action did. */
export interface ActionResult {
  name: string;
  cmd: Cmd;
  /** The plan that was carried out (`noop` for APPLY of an APPLIED payload). */
  kind: Plan["kind"];
  /** The payload's state afterwards. */
  state: State;
  /** How long threads were stopped for the writes (the successful stop), in ms; 0 when nothing was written. */
  stopWindowMs: number;
  /** Stops it took to find one that was safe. */
  attempts: number;
  /** The successful stop window split into stop, check, writes and resume (absent when nothing was written). */
  stopStages?: StopStages;
  /** Non-fatal findings, e.g. the SPEC §12 -flive-patching warning, a failing post-hook. */
  warnings: string[];
  /**
   * Every stop the whole operation made, from seizing to detaching (filled by
   * `performAction`): what the target saw, beyond the write stop above.
   */
  pause?: StopLedger;
  /** Times the whole action was tried (`retryForMs`: an `EBUSY` is tried again); 1 without retries. */
  tries?: number;
}

const DEFAULT_TIMEOUT_MS = 30;

/**
 * The SPEC §12 warning for `p`'s target object, from the object as mapped in
 * the process (through `/proc/PID/map_files/`, never the path the registry
 * names: the registry is the target's to forge, issue #11 item 7), or its
 * separate debug file by build-id. Cached per build-id in the session's context.
 */
function objectWarning(session: TargetSession, p: PayloadRecord): string | undefined {
  return session.context.warnings.getOrSet(p.object.buildId, () => {
    let warning: string | undefined;
    try {
      const obj = mappedObjects(session.pid, { cache: session.context.objectFiles }).find(
        (o) => o.buildId === p.object.buildId,
      );
      if (!obj)
        return {
          warning: `the target object ${p.object.buildId} is not mapped: cannot check it for -flive-patching`,
        };
      warning = livePatchingWarning(obj.elf, obj.path);
      // No DWARF in the object itself: its separate debug file may have it, or the payload's
      // builder read it from the unstripped build of this very build-id.
      if (warning && obj.debugElf && /no DWARF producer/.test(warning))
        warning = livePatchingWarning(obj.debugElf, obj.path);
      if (warning && /no DWARF producer/.test(warning) && p.metadata["target-flags"] === LIVE_PATCHING_FLAG)
        warning = undefined;
    } catch (err) {
      warning = `cannot read the target object to check for -flive-patching=inline-clone: ${(err as Error).message}`;
    }
    return { warning };
  }).warning;
}

/** SPEC §1 expectations of a livepatch-format payload: the bytes at old_addr, before anything. */
function checkExpectations(mem: ProcessMemory, p: PayloadRecord): void {
  for (const f of p.funcs) {
    if (!f.expect) continue;
    const want = fromHexBytes(f.expect);
    const have = mem.read(BigInt(f.oldAddr), want.length);
    if (hexBytes(have) !== f.expect)
      throw new XspliceError(
        "EINVAL",
        `'${p.name}': expectation failed for ${f.name || f.oldAddr}: ${f.oldAddr} holds ${hexBytes(have)}, expected ${f.expect}`,
        { address: BigInt(f.oldAddr), symbol: f.name },
      );
  }
}

const PERMS: Record<"rx" | "rw" | "r", string> = { rx: "r-x", rw: "rw-", r: "r--" };

/**
 * Every region of `p` must be mapped exactly as UPLOAD mapped it, and the ones
 * whose content never changes (code, read-only data) must still hold it:
 * a trampoline into code that is gone or altered would crash the target
 * (issue #11 item 2: a killed UNLOAD left a payload CHECKED with a region
 * unmapped). `EINVAL` naming the region; nothing is written.
 */
function checkRegions(session: TargetSession, p: PayloadRecord): void {
  const maps = readMaps(session.pid);
  for (const r of p.regions) {
    const start = BigInt(r.addr);
    const end = start + BigInt(r.size);
    const perms = maps
      .filter((m) => m.start < end && m.end > start)
      .every(
        (m) =>
          `${m.perms.read ? "r" : "-"}${m.perms.write ? "w" : "-"}${m.perms.exec ? "x" : "-"}` ===
          PERMS[r.kind],
      );
    if (!mappedExactly(maps, start, r.size) || !perms)
      throw new XspliceError(
        "EINVAL",
        `'${p.name}': its ${r.kind} region at ${r.addr} (${r.size} bytes) is not mapped as it was uploaded; unload and upload the payload again`,
        { address: start },
      );
    if (r.digest !== undefined) {
      const digest = createHash("sha256").update(session.memory.read(start, r.size)).digest("hex");
      if (digest !== r.digest)
        throw new XspliceError(
          "EINVAL",
          `'${p.name}': its ${r.kind} region at ${r.addr} no longer holds what was uploaded; unload and upload the payload again`,
          { address: start },
        );
    }
  }
}

function withoutJournal(s: RegistryState): RegistryState {
  const { journal: _j, ...rest } = s;
  return rest;
}

/** The registry after every step succeeded. */
function outcomeOf(base: RegistryState, pp: PatchPlan): RegistryState {
  let s = base;
  for (const step of pp.steps) {
    s =
      step.kind === "apply"
        ? commitApplied(s, step.payload.name, pp.undo.get(step.payload.name) ?? [])
        : commitReverted(s, step.payload.name);
  }
  return withoutJournal(s);
}

/** How an action ended, for `settle`. */
type Outcome =
  /** Every step carried out: the registry as it is now. */
  | { kind: "done"; next: RegistryState }
  /** Nothing of the action is left in the code (never begun, or undone): the error is the rc. */
  | { kind: "refused"; error: XspliceError }
  /** Writes were made and could not all be undone: the journal stays for the next run (SPEC §8). */
  | { kind: "stuck"; error: XspliceError };

/**
 * The one place an action's result reaches the registry. `refused` restores
 * the states from before the action with the error as the asked payload's rc;
 * `stuck` leaves the journal (and the -EAGAIN marks) for recovery; after an
 * exec there is no registry of ours left to write.
 */
function settle(session: TargetSession, initial: RegistryState, name: string, o: Outcome): void {
  if (session.tracee.execed) return;
  switch (o.kind) {
    case "done":
      session.commit(o.next);
      return;
    case "refused":
      session.commit(withoutJournal(commitRc(initial, name, o.error.rc)));
      return;
    case "stuck":
      return;
    default: {
      const never: never = o;
      throw new Error(`unknown outcome ${String(never)}`);
    }
  }
}

function asXspliceError(err: unknown, name: string): XspliceError {
  return err instanceof XspliceError
    ? err
    : new XspliceError("EIO", `'${name}': ${err instanceof Error ? err.message : String(err)}`);
}

/** A span as it was before the stop wrote it, for undoing. */
export interface Written {
  span: PatchSpan;
  old: Uint8Array;
}

function bufferOf(b: Uint8Array): Buffer {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength);
}

/** `bytes` equals `within[offset, offset + bytes.length)`. */
function holds(within: Uint8Array, offset: number, bytes: Uint8Array): boolean {
  if (offset + bytes.length > within.length) return false;
  for (let i = 0; i < bytes.length; i++) if (within[offset + i] !== bytes[i]) return false;
  return true;
}

/**
 * Make the writes of one span, in the stop: read the span right before, check
 * every write's `before` bytes, write the span with every `after` in place,
 * read it back. The span is recorded in `written` before the write, so that a
 * failed or short write is undone too.
 */
export function writeSpan(mem: ProcessMemory, span: PatchSpan, written: Written[]): void {
  const old = mem.read(span.addr, span.len);
  for (const { write: w, offset } of span.writes)
    if (!holds(old, offset, w.before))
      throw new XspliceError(
        "EINVAL",
        `'${w.payload}': ${w.func} at ${hex(w.addr)} holds ${hexBytes(old.subarray(offset, offset + w.before.length))}, expected ${hexBytes(w.before)}: the code changed since the action was planned`,
        { address: w.addr },
      );
  const next = old.slice();
  for (const { write: w, offset } of span.writes) next.set(w.after, offset);
  written.push({ span, old });
  mem.write(span.addr, next);
  const back = mem.readView(span.addr, span.len);
  if (bufferOf(back).equals(bufferOf(next))) return;
  const bad = span.writes.find(({ write: w, offset }) => !holds(back, offset, w.after)) ?? span.writes[0]!;
  const w = bad.write;
  throw new XspliceError(
    "EIO",
    `'${w.payload}': ${w.func} at ${hex(w.addr)} reads back ${hexBytes(back.subarray(bad.offset, bad.offset + w.after.length))} after writing ${hexBytes(w.after)}`,
    { address: w.addr },
  );
}

/** Restore written spans in reverse order; returns the write addresses that could not be restored. */
export function undoWrites(mem: ProcessMemory, written: readonly Written[]): string[] {
  const failed: string[] = [];
  for (const { span, old } of [...written].reverse()) {
    try {
      mem.write(span.addr, old);
      if (bufferOf(mem.readView(span.addr, old.length)).equals(bufferOf(old))) continue;
    } catch {
      // reported below
    }
    for (const { write: w } of span.writes) failed.push(hex(w.addr));
  }
  return failed;
}

/**
 * Run one kind of hook for each payload in a short stop of its own (pre/post
 * hooks, SPEC §7). With `leaveStopped` the threads stay stopped afterwards,
 * for the caller to detach from this stop.
 */
function hooksOutsideStop(
  session: TargetSession,
  calls: { p: PayloadRecord; kind: HookKind }[],
  timeoutMs: number,
  each: (p: PayloadRecord, kind: HookKind, ret: number) => void,
  leaveStopped = false,
): void {
  const wanted = calls.filter(({ p, kind }) => hasHook(p, kind));
  if (wanted.length === 0) return;
  session.stop();
  let ok = false;
  try {
    for (const { p, kind } of wanted) each(p, kind, runHooks(session, p, kind, timeoutMs));
    ok = true;
  } finally {
    if (!ok || !leaveStopped) session.run();
  }
}

/** What the decide phase found. */
interface Decision {
  pp: PatchPlan;
  payloads: PayloadRecord[];
}

/** Phase 1: everything that can refuse the action does so here, threads running. */
function decide(session: TargetSession, plan: Plan, applying: boolean): Decision {
  const applied = plan.kind === "replace" ? [plan.payload] : plan.kind === "apply" ? [plan.payload] : [];
  for (const p of applied) checkRegions(session, p);
  if (applying) checkExpectations(session.memory, plan.payload);
  const pp = planPatches(plan, (a, l) => session.memory.read(a, l));
  return { pp, payloads: pp.steps.map((s) => s.payload) };
}

/**
 * Carry out `plan` (from `plan()` on `session.state`) on the held target.
 * Throws the action's error after settling it (rc recorded). With
 * `leaveStopped` the threads stay stopped when the last thing it did was a
 * stop (the safe stop, or the post-hooks'), for the caller to detach from.
 */
export function executeAction(
  session: TargetSession,
  plan: Plan,
  cmd: Cmd,
  opts: ExecuteOptions = {},
): ActionResult {
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const policy = opts.policy ?? "conservative";
  const name = plan.payload.name;
  const result: ActionResult = {
    name,
    cmd,
    kind: plan.kind,
    state: plan.payload.state,
    stopWindowMs: 0,
    attempts: 0,
    warnings: [],
  };
  if (plan.kind === "noop") return result;
  if (plan.kind === "unload")
    throw new XspliceError("EINVAL", `'${name}': UNLOAD is not an action of the executor`);
  session.run(); // held, not stopped, while deciding
  const initial = session.state;
  const applying = plan.kind === "apply" || plan.kind === "replace";
  if (applying) {
    const w = objectWarning(session, plan.payload);
    if (w) result.warnings.push(w);
  }

  // 1. Decide.
  let d: Decision;
  try {
    d = decide(session, plan, applying);
    pausePoint("action:decided");
  } catch (err) {
    const error = asXspliceError(err, name);
    settle(session, initial, name, { kind: "refused", error });
    throw error;
  }
  const { pp, payloads } = d;
  const pre = pp.steps.map((s) => ({
    p: s.payload,
    kind: (s.kind === "apply" ? "preapply" : "prerevert") as HookKind,
  }));
  const post = pp.steps.map((s) => ({
    p: s.payload,
    kind: (s.kind === "apply" ? "postapply" : "postrevert") as HookKind,
  }));

  // 2. Pre-hooks: a non-zero result vetoes; the struct's rc is 0 before the action.
  try {
    for (const p of payloads) setStructRc(session, p, 0);
    hooksOutsideStop(session, pre, timeoutMs, (p, kind, ret) => {
      if (ret !== 0) throw hookFailure(p, kind, ret);
    });
    pausePoint("action:prehooks");
  } catch (err) {
    const error = asXspliceError(err, name);
    settle(session, initial, name, { kind: "refused", error });
    throw error;
  }

  // 3. Journal the intent and mark every payload involved EAGAIN (SPEC §5, §8).
  const outcome = outcomeOf(initial, pp);
  let marked = initial;
  for (const p of payloads) marked = commitRc(marked, p.name, -ERRNO.EAGAIN);
  const journal: Journal = {
    cmd: cmd as Journal["cmd"],
    name,
    by: process.pid,
    writes: journalWrites(pp),
    outcome: outcome.payloads,
    hooks: [],
  };
  let failure: XspliceError | undefined;
  try {
    session.commit({ ...marked, journal });
    pausePoint("action:journaled");
    // 4. The safe stop: writes, hooks, and the outcome settled before the threads run again.
    const r = safeStop(
      session,
      pp.guards,
      { timeoutMs, policy, retryDelayMs: opts.retryDelayMs ?? 1, leaveStopped: opts.leaveStopped === true },
      (mem) => patchInStop(session, pp, journal, marked, initial, name, outcome, timeoutMs, mem),
    );
    result.stopWindowMs = r.window;
    result.attempts = r.attempts;
    result.stopStages = r.stages;
    result.state = outcome.payloads.find((p) => p.name === name)?.state ?? result.state;
  } catch (err) {
    failure = asXspliceError(err, name);
    // Failures inside the stop were settled there; one before it (no safe stop reached) is here.
    if (!(failure as SettledError).settled)
      settle(session, initial, name, { kind: "refused", error: failure });
  }

  // 5. Post-hooks see the outcome in the struct (SPEC §7); their failure is only a warning now.
  if (!session.tracee.execed) {
    try {
      for (const p of payloads) setStructRc(session, p, failure ? failure.rc : 0);
      hooksOutsideStop(session, post, timeoutMs, () => {}, opts.leaveStopped === true);
    } catch (err) {
      result.warnings.push(err instanceof Error ? err.message : String(err));
    }
  }
  if (failure) throw failure;
  return result;
}

/** An error whose outcome was already settled inside the stop. */
type SettledError = XspliceError & { settled?: boolean };

function settledError(err: unknown, name: string): SettledError {
  const e = asXspliceError(err, name) as SettledError;
  e.settled = true;
  return e;
}

/**
 * Inside the safe stop: per step, hooks (journaled as they run) and writes;
 * then the outcome settled while the threads are still stopped. On failure the
 * writes made are undone and the failure settled as `refused`, or, when
 * undoing fails too, as `stuck`.
 */
function patchInStop(
  session: TargetSession,
  pp: PatchPlan,
  journal: Journal,
  marked: RegistryState,
  initial: RegistryState,
  name: string,
  outcome: RegistryState,
  timeoutMs: number,
  mem: ProcessMemory,
): void {
  const written: Written[] = [];
  const persist = () => session.commit({ ...marked, journal });
  const hook = (p: PayloadRecord, kind: StopHookKind): number => {
    let ret = 0;
    for (const addr of hookAddresses(p, kind)) {
      const entry: JournalHook = { payload: p.name, kind, addr: hex(addr), phase: "running" };
      journal.hooks = [...(journal.hooks ?? []), entry];
      persist();
      pausePoint("action:hook-running");
      try {
        ret = runHooks(session, p, kind, timeoutMs, {
          addr,
          // Recorded before the inject slot is released: until then the slot proves it returned.
          // An apply/revert hook that reports failure did not do its step: nothing to pair.
          onReturned: (r) => {
            entry.phase = r === 0 ? "done" : "failed";
            persist();
            pausePoint("action:hook-returned");
          },
        });
      } catch (err) {
        if (entry.phase === "running") {
          entry.phase = "failed";
          persist();
        }
        throw err;
      }
    }
    return ret;
  };
  try {
    pp.steps.forEach((step, i) => {
      const p = step.payload;
      if (step.kind === "apply") hook(p, "load");
      if (step.byHook) {
        const kind = step.kind === "apply" ? "apply" : "revert";
        const ret = hook(p, kind);
        if (ret !== 0) throw hookFailure(p, kind, ret);
      } else {
        for (const span of pp.spans[i] ?? []) {
          writeSpan(mem, span, written);
          pausePoint("action:write");
        }
      }
      if (step.kind === "revert") hook(p, "unload");
    });
    settle(session, initial, name, { kind: "done", next: outcome });
    pausePoint("action:settled");
  } catch (err) {
    const error = asXspliceError(err, name);
    if (session.tracee.execed) throw settledError(error, name);
    // Undo in the reverse order of doing: the writes, then what the hooks that ran did.
    const failedWrites = undoWrites(mem, written);
    const failedPairs =
      failedWrites.length === 0 ? pairRanHooks(session, journal, initial.payloads, timeoutMs, persist) : [];
    if (failedWrites.length > 0 || failedPairs.length > 0) {
      const left = [...failedWrites.map((a) => `restoring ${a}`), ...failedPairs].join("; ");
      const stuck = new XspliceError(
        "EIO",
        `${error.message}; undoing failed too (${left}): the journal is kept for the next run to roll back`,
        error.where,
        { cause: error },
      );
      settle(session, initial, name, { kind: "stuck", error: stuck });
      throw settledError(stuck, name);
    }
    settle(session, initial, name, { kind: "refused", error });
    throw settledError(error, name);
  }
}

/**
 * Plan and carry out `cmd` on payload `name` (APPLY, REVERT, REPLACE) in a
 * held session: the SPEC §5 table refuses with its errno (state unchanged, rc
 * untouched), everything later records its error as rc.
 */
export function runAction(
  session: TargetSession,
  name: string,
  cmd: Exclude<Cmd, "UNLOAD">,
  opts: ExecuteOptions & { flags?: ActionFlags } = {},
): ActionResult {
  const plan = planAction(session.state, name, cmd, opts.flags ?? {});
  return executeAction(session, plan, cmd, opts);
}

/** Options of `performAction`. */
export interface PerformOptions extends ExecuteOptions {
  flags?: ActionFlags;
  /** How long to wait for another xsplice run holding the target, in ms (default 10000). */
  waitMs?: number;
  /**
   * Try an action that failed with `EBUSY` again until this many ms have
   * passed since the first try (default 0: once), with jittered backoff; the
   * target is let go between tries. The last error says which `EBUSY` it was.
   */
  retryForMs?: number;
  /** Caches to use (`createContext()`), shared across calls. */
  context?: OpenOptions["context"];
  /** How xsplice raises itself while the target is stopped (`src/process/priority.ts`). */
  boost?: OpenOptions["boost"];
}

/** Two ledgers of stops as one (the tries of an action, or an upload and its apply). */
export function addLedgers(a: StopLedger | undefined, b: StopLedger): StopLedger {
  if (!a) return b;
  return {
    stops: a.stops + b.stops,
    totalMs: a.totalMs + b.totalMs,
    longestMs: Math.max(a.longestMs, b.longestMs),
  };
}

/**
 * Whether a try that failed with `err` is tried again (`retryForMs` of
 * `performAction`): an `EBUSY`, while the budget since `start` lasts — after
 * a jittered backoff of 5, 10, 20 … up to 200 ms, never past the budget. Any
 * budget above 0 buys at least one retry, even when the first try used it up
 * (on a loaded host one try can outlast a short budget; "retry for 300 ms" still
 * means "try again"). When not, an error after several tries says so.
 */
export function retryAfter(err: unknown, start: number, retryForMs: number, tries: number): boolean {
  const elapsed = performance.now() - start;
  const budgetLeft = elapsed < retryForMs || (retryForMs > 0 && tries < 2);
  if (err instanceof XspliceError && err.errno === "EBUSY" && budgetLeft) {
    const wait = Math.min(200, 5 * 2 ** (tries - 1)) * (0.5 + Math.random());
    sleepSync(Math.max(0, Math.min(retryForMs - elapsed, wait)));
    return true;
  }
  if (err instanceof XspliceError && tries > 1)
    err.message = `${err.message} (after ${tries} tries in ${Math.round(elapsed)} ms)`;
  return false;
}

/**
 * ACTION APPLY/REVERT/REPLACE on process `pid` with the result the CLI
 * prints (stop window, every stop in `pause`, warnings): open the target
 * (which puts right what a killed run left), plan, execute, detach — from the
 * action's stop when it ended in one. `retryForMs` retries an `EBUSY`,
 * letting the target go between tries.
 */
export function performAction(
  pid: number,
  name: string,
  cmd: Exclude<Cmd, "UNLOAD">,
  opts: PerformOptions = {},
): ActionResult {
  const start = performance.now();
  let pause: StopLedger | undefined;
  for (let tries = 1; ; tries++) {
    const session = openTarget(pid, {
      waitMs: opts.waitMs,
      forPayload: name,
      context: opts.context,
      boost: opts.boost,
    });
    try {
      const result = runAction(session, name, cmd, { ...opts, leaveStopped: true });
      session.close();
      return { ...result, pause: addLedgers(pause, session.tracee.stops), tries };
    } catch (err) {
      session.close();
      pause = addLedgers(pause, session.tracee.stops);
      if (!retryAfter(err, start, opts.retryForMs ?? 0, tries)) throw err;
    }
  }
}
