/**
 * Bring one process to what the payload directory says (SPEC §14), reading
 * its registry — the truth, whatever an earlier (killed) agent did — and
 * doing only what differs:
 *
 * - a wanted payload absent: loaded; when an older version of the same file
 *   is applied, the new one is uploaded and REPLACEs it in one stop, and the
 *   old one is unloaded;
 * - a wanted payload CHECKED (left by an interrupted run): applied;
 * - an agent-managed payload (`NAME@ID12`) no longer wanted: reverted (most
 *   recent first, as SPEC §5 requires) and unloaded.
 *
 * Every step is an ordinary xsplice operation, journaled and recovered by the
 * next run if this one is killed, so a process is never left half-patched.
 * Payloads the agent does not own (other names) are left alone.
 */
import { action, list, load, upload } from "../core/api.ts";
import type { XspliceContext } from "../core/context.ts";
import { performAction } from "../core/execute.ts";
import { XspliceError } from "../errors.ts";
import type { JobPolicy, JobTiming } from "./jobs.ts";
import { managedBase } from "./payload-dir.ts";

/** A payload this process should have applied. */
export interface WantedPayload {
  /** Registry name, `NAME@ID12`. */
  regName: string;
  /** The file's name part (`NAME`). */
  base: string;
  bytes: Uint8Array;
}

/** One step taken, for the audit log and the status. */
export interface ConvergeStep {
  action: "load" | "apply" | "replace" | "revert" | "unload";
  payload: string;
  ok: boolean;
  error?: string;
  message?: string;
  ms: number;
}

/** Bring `pid` to `wanted`; never throws for a step's sake (each failure is a step with `ok: false`). */
export async function convergeProcess(
  pid: number,
  wanted: readonly WantedPayload[],
  policy: JobPolicy,
  timing: JobTiming,
  context?: XspliceContext,
): Promise<ConvergeStep[]> {
  const steps: ConvergeStep[] = [];
  const step = async (act: ConvergeStep["action"], payload: string, fn: () => unknown): Promise<boolean> => {
    const t0 = performance.now();
    try {
      await fn();
      steps.push({ action: act, payload, ok: true, ms: performance.now() - t0 });
      return true;
    } catch (err) {
      const e = err instanceof XspliceError ? err : new XspliceError("EIO", String(err));
      steps.push({
        action: act,
        payload,
        ok: false,
        error: e.errno,
        message: e.message,
        ms: performance.now() - t0,
      });
      return false;
    }
  };
  const opts = { ...policy, timeoutMs: timing.timeoutMs, retryForMs: timing.retryForMs, context };
  const entries = async () => (await list(pid)).payloads;

  const wantedNames = new Set(wanted.map((w) => w.regName));
  const wantedBases = new Set(wanted.map((w) => w.base));
  // Stale payloads whose file is gone altogether: reverted, most recently uploaded first.
  for (const e of [...(await entries())].reverse()) {
    const base = managedBase(e.name);
    if (base === undefined || wantedNames.has(e.name) || wantedBases.has(base)) continue;
    if (
      e.state === "APPLIED" &&
      !(await step("revert", e.name, () => performAction(pid, e.name, "REVERT", opts)))
    )
      continue;
    await step("unload", e.name, () => action(pid, e.name, "UNLOAD"));
  }
  for (const w of wanted) {
    const now = await entries();
    const mine = now.find((e) => e.name === w.regName);
    if (mine?.state === "APPLIED") continue;
    if (mine?.state === "CHECKED") {
      await step("apply", w.regName, () => performAction(pid, w.regName, "APPLY", opts));
      continue;
    }
    const older = now.filter((e) => e.name !== w.regName && managedBase(e.name) === w.base);
    const olderApplied = older.filter((e) => e.state === "APPLIED");
    if (olderApplied.length > 0) {
      // A replaced file: the new version takes over in one stop (SPEC §5 REPLACE), never nothing in between.
      const ok = await step("replace", w.regName, async () => {
        await upload(pid, w.regName, w.bytes, opts);
        try {
          performAction(pid, w.regName, "REPLACE", opts);
        } catch (err) {
          await action(pid, w.regName, "UNLOAD").catch(() => undefined);
          throw err;
        }
      });
      if (!ok) continue;
    } else if (!(await step("load", w.regName, () => load(pid, w.regName, w.bytes, opts)))) continue;
    for (const e of older) await step("unload", e.name, () => action(pid, e.name, "UNLOAD"));
  }
  return steps;
}
