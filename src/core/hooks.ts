/**
 * Payload hooks (SPEC §7), run inside the target on one of its threads through
 * an injected call (`remoteCall`: SysV call, every register restored, a crash
 * is `EFAULT` with the signal not delivered, an overrun `ETIMEDOUT`).
 *
 * Signatures (include/xsplice.h): load/unload take nothing and return nothing;
 * pre-hooks and apply/revert take the payload's `struct xsplice_payload *`
 * and return int; post-hooks take it and return nothing. Before post-hooks the
 * struct's `rc` (offset 8) is set to the action's outcome.
 */
import { errnoName, XspliceError } from "../errors.ts";
import { hex } from "../hex.ts";
import { XSPLICE_PAYLOAD } from "../payload/abi.ts";
import { remoteCall } from "../process/remote-call.ts";
import type { JournalHook, PayloadRecord } from "./registry/records.ts";
import type { TargetSession } from "./session.ts";

/** The eight hook kinds of SPEC §7. */
export type HookKind =
  | "load"
  | "unload"
  | "preapply"
  | "postapply"
  | "prerevert"
  | "postrevert"
  | "apply"
  | "revert";

/** Offset of `rc` in `struct xsplice_payload`. */
const STRUCT_RC_OFFSET = BigInt(XSPLICE_PAYLOAD.rc);

/** The addresses of `p`'s hooks of `kind`, in run order (load/unload arrays keep section order). */
export function hookAddresses(p: PayloadRecord, kind: HookKind): bigint[] {
  if (kind === "load" || kind === "unload") return p.hooks[kind].map((a) => BigInt(a));
  const one = p.hooks[kind];
  return one === undefined ? [] : [BigInt(one)];
}

function structAddress(p: PayloadRecord, kind: HookKind): bigint {
  if (p.payloadStruct === "" || BigInt(p.payloadStruct) === 0n)
    throw new XspliceError(
      "EINVAL",
      `'${p.name}' has a ${kind} hook but no struct xsplice_payload in the target`,
    );
  return BigInt(p.payloadStruct);
}

/**
 * Run `p`'s hooks of `kind` on the session's thread; the session must be
 * stopped (the caller decides whether that is the safe stop or a short one).
 * Returns the int result of the last hook (0 for load/unload/post hooks).
 * With `one`, runs just the hook at `one.addr` and calls `one.onReturned`
 * with its result once it returned, before its inject slot is released (so a
 * killed run leaves the slot as proof until the caller has recorded it).
 * Errors keep `remoteCall`'s errno (`EFAULT` crash, `ETIMEDOUT` hang, `ESRCH`)
 * with the hook named.
 */
export function runHooks(
  session: TargetSession,
  p: PayloadRecord,
  kind: HookKind,
  timeoutMs: number,
  one?: { addr: bigint; onReturned: (ret: number) => void },
): number {
  let result = 0;
  const intOf = (ret: bigint) =>
    kind.startsWith("post") || kind === "load" || kind === "unload" ? 0 : Number(BigInt.asIntN(32, ret));
  for (const addr of one === undefined ? hookAddresses(p, kind) : [one.addr]) {
    const args = kind === "load" || kind === "unload" ? [] : [structAddress(p, kind)];
    let ret: bigint;
    try {
      ret = remoteCall(session.tracee, session.tid, addr, args, {
        timeoutMs,
        beforeRelease: one && ((r) => one.onReturned(intOf(r))),
      });
    } catch (err) {
      if (err instanceof XspliceError)
        throw new XspliceError(err.errno, `'${p.name}': ${kind} hook failed: ${err.message}`, err.where, {
          cause: err,
        });
      throw err;
    }
    // The hooks return C `int`: the low 32 bits, sign-extended.
    result = intOf(ret);
  }
  return result;
}

/** Store the action's outcome in the payload struct's `rc` for the hooks to read (SPEC §7). */
export function setStructRc(session: TargetSession, p: PayloadRecord, rc: number): void {
  if (p.payloadStruct === "" || BigInt(p.payloadStruct) === 0n) return;
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigInt64(0, BigInt(rc), true);
  session.tracee.memory.write(BigInt(p.payloadStruct) + STRUCT_RC_OFFSET, b);
}

/**
 * The error a hook's non-zero result becomes (a pre-hook veto, or an
 * apply/revert hook's failure): its errno when it is one (either sign), else
 * `ECANCELED`; `rc` is what GET then reports.
 */
export function hookFailure(p: PayloadRecord, kind: HookKind, ret: number): XspliceError {
  const name = errnoName(ret);
  const what = kind.startsWith("pre") ? "vetoed the action" : "failed";
  const err = new XspliceError(name ?? "ECANCELED", `'${p.name}': ${kind} hook ${what} (returned ${ret})`);
  return err;
}

/** True when `p` has at least one hook of `kind`. */
export function hasHook(p: PayloadRecord, kind: HookKind): boolean {
  return hookAddresses(p, kind).length > 0;
}

/** The hooks that undo what a hook run inside the stop did (SPEC §7): load ↔ unload, apply ↔ revert. */
export const PAIRED_HOOK = { load: "unload", unload: "load", apply: "revert", revert: "apply" } as const;

/** A hook kind run inside the stop. */
export type StopHookKind = keyof typeof PAIRED_HOOK;

/**
 * Undo what the hooks of an interrupted or failed stop did: for every
 * (payload, kind) with a hook `done` in `journal`, newest first, run the
 * payload's paired hooks once (SPEC §7; issue #11 item 5: a load hook whose
 * patches were rolled back must not keep its effect). Each pair hook is
 * journaled as it runs, like the hooks of the stop (`undo` entries: "running"
 * before the call, "done" once it returned, before its inject slot is
 * released), and a pair hook an earlier, killed run already got to return is
 * not run again: a run killed in the middle of pairing never runs a pair
 * twice. Then the entries paired are marked `paired`. Returns the failures
 * (empty when all ran).
 */
export function pairRanHooks(
  session: TargetSession,
  journal: { hooks?: JournalHook[] },
  payloads: readonly PayloadRecord[],
  timeoutMs: number,
  persist: () => void,
): string[] {
  const failures: string[] = [];
  const seen = new Set<string>();
  for (const h of [...(journal.hooks ?? [])].reverse()) {
    if (h.phase !== "done" || h.undo) continue;
    const key = `${h.payload}\0${h.kind}`;
    const same = (journal.hooks ?? []).filter(
      (x) => x.payload === h.payload && x.kind === h.kind && x.phase === "done" && !x.undo,
    );
    if (seen.has(key)) continue;
    seen.add(key);
    const p = payloads.find((x) => x.name === h.payload);
    const pair = PAIRED_HOOK[h.kind];
    try {
      if (!p) throw new XspliceError("ENOENT", `payload '${h.payload}' is gone`);
      for (const addr of hookAddresses(p, pair)) {
        const ran = (journal.hooks ?? []).some(
          (x) =>
            x.undo &&
            x.payload === p.name &&
            x.kind === pair &&
            BigInt(x.addr) === addr &&
            x.phase === "done",
        );
        if (ran) continue;
        const entry: JournalHook = {
          payload: p.name,
          kind: pair,
          addr: hex(addr),
          phase: "running",
          undo: true,
        };
        journal.hooks = [...(journal.hooks ?? []), entry];
        persist();
        let ret = 0;
        try {
          ret = runHooks(session, p, pair, timeoutMs, {
            addr,
            onReturned: (r) => {
              entry.phase = r === 0 ? "done" : "failed";
              persist();
            },
          });
        } catch (err) {
          if (entry.phase === "running") {
            entry.phase = "failed";
            persist();
          }
          throw err;
        }
        if (ret !== 0) throw hookFailure(p, pair, ret);
      }
      for (const x of same) x.phase = "paired";
      persist();
    } catch (err) {
      failures.push(
        `'${h.payload}' ${pair} hook (pair of ${h.kind}): ${err instanceof Error ? err.message : String(err)}`,
      );
    }
  }
  return failures;
}
