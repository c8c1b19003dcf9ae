/**
 * Crash safety (SPEC §8): an action journals its intent — every code write
 * with its before and after bytes — in the registry before the stop, and
 * clears the journal in the same commit that records its outcome. A journal
 * found by a later run therefore means an xsplice run died somewhere between
 * those two commits, with any subset of the writes done.
 *
 * Choice: roll back. Every journaled write is put back to its `before` bytes
 * (in reverse order, so stacked writes to one address unwind correctly), in a
 * safe stop of its own (SPEC §6: while xsplice was dead the threads ran, and
 * may now be inside the half-patched functions), and the registry keeps the
 * payload states it had before the action — which is the state the journal
 * was committed with. The action's payload gets rc `-ECANCELED` (its last
 * action did not happen); other payloads' stale `-EAGAIN` becomes 0. Rolling
 * back needs nothing but the journal; rolling forward would also need the
 * hooks the dead run may or may not have run.
 */
import { ERRNO, XspliceError } from "../errors.ts";
import { fromHexBytes, hex, hexBytes } from "../hex.ts";
import type { GuardRange } from "./patch-plan.ts";
import type { RegistryState } from "./registry/records.ts";
import { type StackPolicy, safeStop } from "./safe-stop.ts";
import type { TargetSession } from "./session.ts";

/** Options of `recover`. */
export interface RecoveryOptions {
  /** Bound on reaching a safe stop for the roll-back, in ms (default 1000). */
  timeoutMs?: number;
  policy?: StackPolicy;
}

/** What recovery did. */
export interface RecoveryReport {
  /** The interrupted action and payload. */
  cmd: string;
  name: string;
  /** pid of the run that died. */
  by: number;
  /** Writes that had been made and were rolled back. */
  restored: number;
  /** Time threads were stopped for the roll-back, in ms (0 when nothing was written). */
  stopWindowMs: number;
}

/**
 * Roll back the operation journaled in `session`'s registry, if any, and
 * clear the journal. Leaves the threads as it found them (stopped after
 * `openTarget`). `EBUSY` when no safe stop was reached: the journal stays for
 * the next run.
 */
export function recover(session: TargetSession, opts: RecoveryOptions = {}): RecoveryReport | undefined {
  const state = session.state;
  const j = state.journal;
  if (!j) return undefined;
  const wasStopped = session.tracee.stopped;

  const writes = j.writes.map((w) => ({
    addr: BigInt(w.addr),
    before: fromHexBytes(w.before),
    after: fromHexBytes(w.after),
    guard: {
      start: BigInt(w.guardStart ?? w.addr),
      end: w.guardEnd !== undefined ? BigInt(w.guardEnd) : BigInt(w.addr) + BigInt(w.before.length / 2),
      func: w.addr,
      payload: j.name,
    } satisfies GuardRange,
  }));
  // Only what differs needs a stop; a run killed before its stop wrote nothing.
  const changed = writes.filter(
    (w) => hexBytes(session.tracee.memory.read(w.addr, w.before.length)) !== hexBytes(w.before),
  );
  let window = 0;
  if (changed.length > 0) {
    try {
      const r = safeStop(
        session,
        changed.map((w) => w.guard),
        { timeoutMs: opts.timeoutMs ?? 1000, policy: opts.policy ?? "conservative" },
        () => {
          for (const w of [...writes].reverse()) {
            session.tracee.memory.write(w.addr, w.before);
            const back = session.tracee.memory.read(w.addr, w.before.length);
            if (hexBytes(back) !== hexBytes(w.before))
              throw new XspliceError(
                "EIO",
                `recovery of ${j.cmd} '${j.name}': ${hex(w.addr)} reads back ${hexBytes(back)} after restoring ${hexBytes(w.before)}`,
                { address: w.addr },
              );
          }
        },
      );
      window = r.window;
    } catch (err) {
      if (wasStopped) session.stop();
      if (err instanceof XspliceError)
        throw new XspliceError(
          err.errno,
          `recovery of the ${j.cmd} of '${j.name}' interrupted in run ${j.by}: ${err.message}`,
          err.where,
          { cause: err },
        );
      throw err;
    }
  }
  const { journal: _j, ...rest } = state;
  const next: RegistryState = {
    ...rest,
    version: state.version + 1,
    payloads: state.payloads.map((p) =>
      p.name === j.name ? { ...p, rc: -ERRNO.ECANCELED } : p.rc === -ERRNO.EAGAIN ? { ...p, rc: 0 } : p,
    ),
  };
  session.commit(next);
  if (wasStopped) session.stop();
  return { cmd: j.cmd, name: j.name, by: j.by, restored: changed.length, stopWindowMs: window };
}
