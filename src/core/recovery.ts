/**
 * Crash safety (SPEC §8): every operation that changes a process journals its
 * intent in the registry first and clears the journal in the same commit that
 * records its outcome. A journal found by a later run therefore means an
 * xsplice run died between those two commits, with any part of the work done.
 * What each kind of journal means and how it is finished:
 *
 * - APPLY, REVERT, REPLACE — rolled back. Every journaled write is put back to
 *   its `before` bytes (in reverse order, so stacked writes to one address
 *   unwind correctly), in a safe stop of its own (while xsplice was dead the
 *   threads ran, and may now be inside the half-patched functions); then every
 *   hook the dead run ran inside its stop has its pair run (load ↔ unload,
 *   apply ↔ revert, newest first; issue #11 item 5), so no hook's effect
 *   outlives the code it went with. A hook the journal shows as "running" is
 *   decided by its inject slot: returned (the stub marked the slot done) counts
 *   as done; never called counts as not run; still running in a thread is
 *   `EBUSY` (the journal stays for a later run, once it has returned). The
 *   registry keeps the payload states from before the action; the asked
 *   payload gets rc `-ECANCELED` (its last action did not happen).
 * - UNLOAD — rolled forward: the regions of the payload still mapped as UPLOAD
 *   mapped them (and, for code and read-only data, still holding what it wrote)
 *   are unmapped, in a safe stop, and the record is dropped. Rolling back is
 *   impossible once one region is gone, and a record whose code is half gone
 *   must never be applied (issue #11 item 2).
 * - UPLOAD — rolled back: whatever of the new regions got mapped is unmapped
 *   (issue #11 item 6); no thread ever ran that code.
 */
import { createHash } from "node:crypto";
import { ERRNO, XspliceError } from "../errors.ts";
import { fromHexBytes, hex, hexBytes } from "../hex.ts";
import { mappedExactly, readMaps } from "../process/maps.ts";
import { pausePoint } from "../process/pause-point.ts";
import type { InjectionTrace } from "../process/remote-call.ts";
import { remoteMunmap } from "../process/syscalls.ts";
import { pairRanHooks } from "./hooks.ts";
import type { GuardRange } from "./patch-plan.ts";
import type { Journal, JournalRegion, RegistryState } from "./registry/records.ts";
import { type StackPolicy, safeStop } from "./safe-stop.ts";
import type { TargetSession } from "./session.ts";

/** Options of `recover`. */
export interface RecoveryOptions {
  /** Bound on reaching a safe stop for the roll-back, in ms (default 1000). */
  timeoutMs?: number;
  policy?: StackPolicy;
  /** What the dead run's inject slots showed before they were released (`injectionEvidence`). */
  evidence?: readonly InjectionTrace[];
}

/** What recovery did. */
export interface RecoveryReport {
  /** The interrupted operation and payload. */
  cmd: Journal["cmd"];
  name: string;
  /** pid of the run that died. */
  by: number;
  /** Writes that had been made and were rolled back. */
  restored: number;
  /** Hooks whose pairs ran (`'name' unload (pair of load)`). */
  paired: string[];
  /** Regions unmapped (UNLOAD rolled forward, UPLOAD rolled back). */
  unmapped: number;
  /** Time threads were stopped for it, in ms (0 when nothing was written). */
  stopWindowMs: number;
}

function withoutJournal(s: RegistryState): RegistryState {
  const { journal: _j, ...rest } = s;
  return rest;
}

function recoveryError(j: Journal, err: unknown): XspliceError {
  const e = err instanceof XspliceError ? err : new XspliceError("EIO", String(err));
  return new XspliceError(
    e.errno,
    `recovery of the ${j.cmd} of '${j.name}' interrupted in run ${j.by}: ${e.message}`,
    e.where,
    {
      cause: err,
    },
  );
}

/**
 * Decide the hooks a journal shows as "running" from the dead run's inject
 * slots: returned → done, never called → failed (nothing to pair), still
 * executing → `EBUSY`.
 */
function settleRunningHooks(j: Journal, evidence: readonly InjectionTrace[]): void {
  for (const h of j.hooks ?? []) {
    if (h.phase !== "running") continue;
    const slot = evidence.find((e) => e.fn === BigInt(h.addr));
    if (slot?.done) h.phase = "done";
    else if (slot?.ownerAlive)
      throw new XspliceError(
        "EBUSY",
        `the ${h.kind} hook of '${h.payload}' that the killed run called is still running in thread ${slot.owner}; try again once it has returned`,
        { tid: slot.owner },
      );
    else h.phase = "failed";
  }
}

/** The journal's region is still one of ours, exactly as UPLOAD left it. */
function stillOurs(session: TargetSession, r: JournalRegion): boolean {
  const addr = BigInt(r.addr);
  if (!mappedExactly(readMaps(session.pid), addr, r.size)) return false;
  if (r.digest === undefined) return true;
  try {
    return createHash("sha256").update(session.memory.read(addr, r.size)).digest("hex") === r.digest;
  } catch {
    return false;
  }
}

/** APPLY, REVERT, REPLACE: roll the writes back, pair the hooks, keep the states from before. */
function rollBackAction(session: TargetSession, j: Journal, opts: RecoveryOptions): RecoveryReport {
  const state = session.state;
  settleRunningHooks(j, opts.evidence ?? []);
  const writes = j.writes.map((w) => ({
    addr: BigInt(w.addr),
    before: fromHexBytes(w.before),
    guard: {
      start: BigInt(w.guardStart ?? w.addr),
      end: w.guardEnd !== undefined ? BigInt(w.guardEnd) : BigInt(w.addr) + BigInt(w.before.length / 2),
      func: w.addr,
      payload: j.name,
    } satisfies GuardRange,
  }));
  // Only what differs needs restoring; a run killed before its stop wrote nothing.
  const changed = writes.filter(
    (w) => hexBytes(session.memory.read(w.addr, w.before.length)) !== hexBytes(w.before),
  );
  const hooksToPair = (j.hooks ?? []).some((h) => h.phase === "done" && !h.undo);
  let window = 0;
  const paired: string[] = [];
  if (changed.length > 0 || hooksToPair) {
    const r = safeStop(
      session,
      changed.map((w) => w.guard),
      { timeoutMs: opts.timeoutMs ?? 1000, policy: opts.policy ?? "conservative" },
      () => {
        for (const w of [...writes].reverse()) {
          session.memory.write(w.addr, w.before);
          const back = session.memory.read(w.addr, w.before.length);
          if (hexBytes(back) !== hexBytes(w.before))
            throw new XspliceError(
              "EIO",
              `${hex(w.addr)} reads back ${hexBytes(back)} after restoring ${hexBytes(w.before)}`,
              {
                address: w.addr,
              },
            );
        }
        pausePoint("recover:restored");
        const before = (j.hooks ?? [])
          .filter((h) => h.phase === "done" && !h.undo)
          .map((h) => `'${h.payload}' ${h.kind}`);
        const failures = pairRanHooks(session, j, state.payloads, opts.timeoutMs ?? 1000, () =>
          session.commit({ ...state, journal: j }),
        );
        if (failures.length > 0) throw new XspliceError("EIO", failures.join("; "));
        paired.push(...before);
      },
    );
    window = r.window;
  }
  session.commit({
    ...withoutJournal(state),
    version: state.version + 1,
    payloads: state.payloads.map((p) =>
      p.name === j.name ? { ...p, rc: -ERRNO.ECANCELED } : p.rc === -ERRNO.EAGAIN ? { ...p, rc: 0 } : p,
    ),
  });
  return {
    cmd: j.cmd,
    name: j.name,
    by: j.by,
    restored: changed.length,
    paired,
    unmapped: 0,
    stopWindowMs: window,
  };
}

/** UNLOAD: unmap what is still ours of the payload, in a safe stop, and drop its record. */
function rollForwardUnload(session: TargetSession, j: Journal, opts: RecoveryOptions): RecoveryReport {
  const regions = (j.regions ?? []).filter((r) => stillOurs(session, r));
  const guards = regions
    .filter((r) => r.kind === "rx")
    .map((r) => ({
      start: BigInt(r.addr),
      end: BigInt(r.addr) + BigInt(r.size),
      func: `the code of '${j.name}'`,
      payload: j.name,
    }));
  let window = 0;
  const next = { ...withoutJournal(session.state), payloads: j.outcome, version: session.state.version + 1 };
  if (regions.length > 0) {
    const r = safeStop(session, guards, { timeoutMs: opts.timeoutMs ?? 1000, policy: opts.policy }, () => {
      for (const reg of regions) {
        remoteMunmap(session.tracee, session.tid, BigInt(reg.addr), reg.size);
        pausePoint("recover:unmapped");
      }
      session.commit(next);
    });
    window = r.window;
  } else session.commit(next);
  return {
    cmd: j.cmd,
    name: j.name,
    by: j.by,
    restored: 0,
    paired: [],
    unmapped: regions.length,
    stopWindowMs: window,
  };
}

/** UPLOAD: unmap whatever of the new regions got mapped; the registry never had the record. */
function rollBackUpload(session: TargetSession, j: Journal): RecoveryReport {
  const maps = readMaps(session.pid);
  const regions = (j.regions ?? []).filter((r) => mappedExactly(maps, BigInt(r.addr), r.size));
  const t0 = performance.now();
  if (regions.length > 0) {
    session.stop();
    try {
      for (const r of regions) {
        remoteMunmap(session.tracee, session.tid, BigInt(r.addr), r.size);
        pausePoint("recover:unmapped");
      }
    } finally {
      session.run();
    }
  }
  const window = regions.length > 0 ? performance.now() - t0 : 0;
  session.commit({ ...withoutJournal(session.state), version: session.state.version + 1 });
  return {
    cmd: j.cmd,
    name: j.name,
    by: j.by,
    restored: 0,
    paired: [],
    unmapped: regions.length,
    stopWindowMs: window,
  };
}

/**
 * Finish the operation journaled in `session`'s registry, if any, and clear
 * the journal. The process is left running (held). `EBUSY` when no safe stop
 * was reached or a dead run's hook still runs: the journal stays for the next
 * run.
 */
export function recover(session: TargetSession, opts: RecoveryOptions = {}): RecoveryReport | undefined {
  const j = session.state.journal;
  if (!j) return undefined;
  try {
    switch (j.cmd) {
      case "APPLY":
      case "REVERT":
      case "REPLACE":
        return rollBackAction(session, structuredClone(j), opts);
      case "UNLOAD":
        return rollForwardUnload(session, j, opts);
      case "UPLOAD":
        return rollBackUpload(session, j);
      default: {
        const never: never = j.cmd;
        throw new XspliceError("EINVAL", `registry journal of an unknown operation ${String(never)}`);
      }
    }
  } catch (err) {
    session.run();
    throw recoveryError(j, err);
  }
}
