/**
 * Carrying out APPLY, REVERT and REPLACE (SPEC §3–§7) on a held target.
 * Decide, then act (STYLE: Xen's `livepatch_action` / `livepatch_do_action`):
 *
 * 1. Before any stop: the plan (`actions.ts`: state table, dependencies),
 *    expectations (livepatch format, SPEC §1), the writes computed from the
 *    current code (`patch-plan.ts`), the pre-hooks (a veto becomes rc), and a
 *    registry commit that sets rc = -EAGAIN (GET from another shell reports it,
 *    SPEC §5) and journals the intent: every write with its before/after bytes
 *    (SPEC §8).
 * 2. The safe stop (SPEC §6): quiesce every thread; for each, the pc and the
 *    return addresses on its stack must lie outside every guarded range (the
 *    whole old function, for apply and revert alike); if not, resume, wait
 *    briefly and retry until the timeout, then `EBUSY` naming function and
 *    thread, nothing written. Once safe: load hooks, the writes (in spans of
 *    nearby functions, `PatchSpan`: each span read right before and every
 *    write's `before` compared, written, read back), unload hooks; any failure
 *    restores what was written; resume.
 * 3. After: commit the new state (journal cleared), then the post-hooks with
 *    the outcome in the payload struct's rc — also after a failure that came
 *    after the pre-hooks allowed the action, never after a veto.
 *
 * Only the code writes, the load/unload hooks and the safety check happen
 * while threads are stopped; the stop window is measured and returned.
 */

import { readFileSync } from "node:fs";
import { livePatchingWarning } from "../elf/dwarf-producer.ts";
import type { ElfFile } from "../elf/file.ts";
import { readElf } from "../elf/file.ts";
import { ERRNO, XspliceError } from "../errors.ts";
import { fromHexBytes, hex, hexBytes } from "../hex.ts";
import { type ProcessMemory, readMemory } from "../process/memory.ts";
import { mappedObjects } from "../process/objects.ts";
import type { StopLedger } from "../process/threads.ts";
import {
  type ActionFlags,
  type Cmd,
  commitApplied,
  commitRc,
  commitReverted,
  type Plan,
  plan as planAction,
} from "./actions.ts";
import { type HookKind, hasHook, hookFailure, runHooks, setStructRc } from "./hooks.ts";
import { journalWrites, type PatchPlan, type PatchSpan, planPatches } from "./patch-plan.ts";
import { recover } from "./recovery.ts";
import type { Journal, PayloadRecord, RegistryState, State } from "./registry/records.ts";
import { type SafeStopResult, type StackPolicy, type StopStages, safeStop } from "./safe-stop.ts";
import { addOpenHook, openTarget, type TargetSession } from "./session.ts";

export type { StackPolicy, StopStages } from "./safe-stop.ts";

// SPEC §8: every session opened by this build first finishes what a killed run left journaled.
addOpenHook((session) => {
  recover(session);
});

/** Options of an action. */
export interface ExecuteOptions {
  /** Bound on reaching a safe stop, in ms (SPEC §5 default 30); also bounds each hook call. */
  timeoutMs?: number;
  /** Stack policy of the safety check; default conservative (SPEC §6). */
  policy?: StackPolicy;
  /** Wait between attempts at a safe stop, in ms (default 1). */
  retryDelayMs?: number;
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
}

const DEFAULT_TIMEOUT_MS = 30;

const warningCache = new Map<string, string | undefined>();

/** The SPEC §12 warning for `p`'s target object (cached per object build-id). */
function objectWarning(pid: number, p: PayloadRecord): string | undefined {
  const key = `${p.object.buildId}`;
  if (warningCache.has(key)) return warningCache.get(key);
  let warning: string | undefined;
  try {
    const obj = mappedObjects(pid).find((o) => o.buildId === p.object.buildId);
    let elf: ElfFile | undefined = obj?.elf;
    if (!elf) elf = readElf(readFileSync(p.object.path));
    warning = livePatchingWarning(elf, p.object.path);
    // No DWARF in the object itself: its separate debug file may have it.
    if (warning && obj?.debugFile && /no DWARF producer/.test(warning))
      warning = livePatchingWarning(readElf(readFileSync(obj.debugFile)), p.object.path);
  } catch (err) {
    warning = `cannot read ${p.object.path} to check for -flive-patching=inline-clone: ${(err as Error).message}`;
  }
  warningCache.set(key, warning);
  return warning;
}

/** SPEC §1 expectations of a livepatch-format payload: the bytes at old_addr, before anything. */
function checkExpectations(pid: number, p: PayloadRecord): void {
  for (const f of p.funcs) {
    if (!f.expect) continue;
    const want = fromHexBytes(f.expect);
    const have = readMemory(pid, BigInt(f.oldAddr), want.length);
    if (hexBytes(have) !== f.expect)
      throw new XspliceError(
        "EINVAL",
        `'${p.name}': expectation failed for ${f.name || f.oldAddr}: ${f.oldAddr} holds ${hexBytes(have)}, expected ${f.expect}`,
        { address: BigInt(f.oldAddr), symbol: f.name },
      );
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

/** The registry after a failed action: the state before it, rc = the error on the named payload. */
function failedOutcome(before: RegistryState, name: string, rc: number): RegistryState {
  return withoutJournal(commitRc(before, name, rc));
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

/** Run one kind of hook for each payload in a short stop of its own (pre/post hooks, SPEC §7). */
function hooksOutsideStop(
  session: TargetSession,
  calls: { p: PayloadRecord; kind: HookKind }[],
  timeoutMs: number,
  each: (p: PayloadRecord, kind: HookKind, ret: number) => void,
): void {
  const wanted = calls.filter(({ p, kind }) => hasHook(p, kind));
  if (wanted.length === 0) return;
  session.stop(1000);
  try {
    for (const { p, kind } of wanted) each(p, kind, runHooks(session, p, kind, timeoutMs));
  } finally {
    session.run();
  }
}

/**
 * Carry out `plan` (from `plan()` on `session.state`) on the held target.
 * Throws the action's error after recording it as the payload's rc; the
 * session is left running (resumed), still held.
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
  if (plan.kind === "unload") throw new XspliceError("EINVAL", `'${name}': UNLOAD is not carried out here`);
  // Held, not stopped, while deciding: reading the object's DWARF, planning and the registry
  // commits must not lengthen the target's pause; only the safe stop (and short hook stops) stop it.
  session.run();
  const pid = session.pid;
  const initial = session.state;
  const applying = plan.kind === "apply" || plan.kind === "replace";
  if (applying) {
    const w = objectWarning(pid, plan.payload);
    if (w) result.warnings.push(w);
  }

  // Decide: everything that can refuse the action does so before the target is touched.
  let pp: PatchPlan;
  try {
    if (applying) checkExpectations(pid, plan.payload);
    pp = planPatches(plan, (a, l) => readMemory(pid, a, l));
  } catch (err) {
    if (err instanceof XspliceError) session.commit(failedOutcome(initial, name, err.rc));
    throw err;
  }
  const payloads = pp.steps.map((s) => s.payload);
  const preCalls = pp.steps.map((s) => ({
    p: s.payload,
    kind: (s.kind === "apply" ? "preapply" : "prerevert") as HookKind,
  }));
  const postCalls = pp.steps.map((s) => ({
    p: s.payload,
    kind: (s.kind === "apply" ? "postapply" : "postrevert") as HookKind,
  }));

  // Pre-hooks (SPEC §7): a non-zero result vetoes; the struct's rc is 0 before the action.
  try {
    for (const p of payloads) setStructRc(session, p, 0);
    hooksOutsideStop(session, preCalls, timeoutMs, (p, kind, ret) => {
      if (ret !== 0) throw hookFailure(p, kind, ret);
    });
  } catch (err) {
    if (err instanceof XspliceError) session.commit(failedOutcome(initial, name, err.rc));
    throw err;
  }

  // Journal the intent and mark every payload involved EAGAIN (SPEC §5, §8).
  const outcome = outcomeOf(initial, pp);
  let marked = initial;
  for (const p of payloads) marked = commitRc(marked, p.name, -ERRNO.EAGAIN);
  marked = {
    ...marked,
    journal: {
      cmd: cmd as Journal["cmd"],
      name,
      by: process.pid,
      writes: journalWrites(pp),
      outcome: outcome.payloads,
    },
  };
  let failure: XspliceError | undefined;
  let journalKept = false;
  try {
    session.commit(marked);
    const { window, attempts, stages } = stopAndPatch(session, pp, timeoutMs, policy, opts.retryDelayMs ?? 1);
    result.stopWindowMs = window;
    result.attempts = attempts;
    result.stopStages = stages;
  } catch (err) {
    failure =
      err instanceof XspliceError
        ? err
        : new XspliceError("EIO", `'${name}': ${err instanceof Error ? err.message : String(err)}`);
    journalKept = (failure as XspliceError & { keepJournal?: boolean }).keepJournal === true;
  }
  session.run();

  if (!failure) {
    session.commit(outcome);
    result.state = outcome.payloads.find((p) => p.name === name)?.state ?? result.state;
  } else if (!journalKept) {
    session.commit(failedOutcome(initial, name, failure.rc));
  }
  // Post-hooks see the outcome in the struct (SPEC §7); their failure is only a warning now.
  const rc = failure ? failure.rc : 0;
  try {
    for (const p of payloads) setStructRc(session, p, rc);
    hooksOutsideStop(session, postCalls, timeoutMs, () => {});
  } catch (err) {
    result.warnings.push(err instanceof Error ? err.message : String(err));
  }
  if (failure) throw failure;
  return result;
}

/**
 * The safe stop and the writes (SPEC §6). On failure inside the stop the
 * writes made are undone; if even that fails, the error carries
 * `keepJournal` so the journal stays for recovery to finish.
 */
function stopAndPatch(
  session: TargetSession,
  pp: PatchPlan,
  timeoutMs: number,
  policy: StackPolicy,
  retryDelayMs: number,
): SafeStopResult {
  return safeStop(session, pp.guards, { timeoutMs, policy, retryDelayMs }, (mem) =>
    patchInStop(session, pp, timeoutMs, mem),
  );
}

/** Inside the safe stop: per step, hooks and writes; on failure undo the writes made. */
function patchInStop(session: TargetSession, pp: PatchPlan, timeoutMs: number, mem: ProcessMemory): void {
  const written: Written[] = [];
  try {
    pp.steps.forEach((step, i) => {
      const p = step.payload;
      if (step.kind === "apply" && hasHook(p, "load")) runHooks(session, p, "load", timeoutMs);
      if (step.byHook) {
        const kind = step.kind === "apply" ? "apply" : "revert";
        const ret = runHooks(session, p, kind, timeoutMs);
        if (ret !== 0) throw hookFailure(p, kind, ret);
      } else {
        for (const span of pp.spans[i] ?? []) writeSpan(mem, span, written);
      }
      if (step.kind === "revert" && hasHook(p, "unload")) runHooks(session, p, "unload", timeoutMs);
    });
  } catch (err) {
    const failed = undoWrites(mem, written);
    if (failed.length > 0) {
      const e = new XspliceError(
        "EIO",
        `${err instanceof Error ? err.message : String(err)}; restoring ${failed.join(", ")} failed too: the journal is kept for recovery`,
      ) as XspliceError & { keepJournal?: boolean };
      e.keepJournal = true;
      throw e;
    }
    throw err;
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
}

/**
 * ACTION APPLY/REVERT/REPLACE on process `pid` with the result the CLI
 * prints (stop window, warnings): open the target (recovering a journal left
 * by a killed run), plan, execute, close.
 */
export function performAction(
  pid: number,
  name: string,
  cmd: Exclude<Cmd, "UNLOAD">,
  opts: PerformOptions = {},
): ActionResult {
  const session = openTarget(pid, { waitMs: opts.waitMs, forPayload: name });
  let result: ActionResult;
  try {
    result = runAction(session, name, cmd, opts);
  } finally {
    session.close();
  }
  return { ...result, pause: session.tracee.stops };
}
