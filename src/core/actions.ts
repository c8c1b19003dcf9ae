/**
 * The action state machine of SPEC §5, in one place: for a command on a
 * payload, decide what must happen — or which errno refuses it — from the
 * registry alone. Deciding is pure; carrying the decision out (stopping
 * threads, writing code, running hooks) is the executor's job, and only the
 * commit helpers below change a payload's `state`.
 */
import { ERRNO, XspliceError } from "../errors.ts";
import type { PayloadRecord, RegistryState } from "./registry/records.ts";

/** ACTION commands with their SPEC §5 numbers. */
export const CMD = { UNLOAD: 1, REVERT: 2, APPLY: 3, REPLACE: 4 } as const;
export type Cmd = keyof typeof CMD;

/** ACTION flags (SPEC §5). */
export interface ActionFlags {
  /** NODEPS: skip the `.xsplice.depends` check of APPLY (the target check still holds). */
  nodeps?: boolean;
}

/** What an action will do, decided before anything is touched. */
export type Plan =
  /** Nothing to do (APPLY of an APPLIED payload). */
  | { kind: "noop"; payload: PayloadRecord }
  /** Free the payload's memory and drop its record. */
  | { kind: "unload"; payload: PayloadRecord }
  /** Patch the payload's functions. */
  | { kind: "apply"; payload: PayloadRecord }
  /** Undo the payload's patches. */
  | { kind: "revert"; payload: PayloadRecord }
  /** In one stop: revert `revert` (most recent first), then apply `payload`. */
  | { kind: "replace"; payload: PayloadRecord; revert: PayloadRecord[] };

/**
 * True while an action on `p` is in flight: the executor marks the payloads it
 * acts on with rc `-EAGAIN` in the same commit that records the journal. A
 * bare `-EAGAIN` without a journal is the result of an earlier action (a
 * pre-hook may veto with `-EAGAIN`), not a busy payload.
 */
export function isInProgress(reg: RegistryState, p: PayloadRecord): boolean {
  return p.rc === -ERRNO.EAGAIN && reg.journal !== undefined;
}

function find(reg: RegistryState, name: string): PayloadRecord {
  const p = reg.payloads.find((x) => x.name === name);
  if (!p) throw new XspliceError("ENOENT", `no payload named '${name}'`);
  return p;
}

/** Payloads applied to the same target object as `p`, most recently applied first. */
export function appliedOnObject(reg: RegistryState, objectBuildId: string): PayloadRecord[] {
  return reg.payloads
    .filter((x) => x.state === "APPLIED" && x.object.buildId === objectBuildId)
    .sort((a, b) => b.appliedSeq - a.appliedSeq);
}

/** SPEC §4: the build-id an APPLY of `p` must depend on. */
function expectedDependency(reg: RegistryState, p: PayloadRecord): string {
  const top = appliedOnObject(reg, p.object.buildId)[0];
  return top ? top.buildId : p.object.buildId;
}

/**
 * Decide what `cmd` on payload `name` does, per the SPEC §5 table. Throws the
 * table's errno when the action is refused; never changes `reg`.
 */
export function plan(reg: RegistryState, name: string, cmd: Cmd, flags: ActionFlags = {}): Plan {
  const p = find(reg, name);
  if (isInProgress(reg, p)) throw new XspliceError("EBUSY", `an action on '${name}' is in progress`);
  switch (cmd) {
    case "UNLOAD":
      if (p.state === "APPLIED")
        throw new XspliceError("EINVAL", `'${name}' is applied; revert it before unloading`);
      return { kind: "unload", payload: p };
    case "APPLY": {
      if (p.state === "APPLIED") return { kind: "noop", payload: p };
      if (p.reverted && p.hasOwnWritableData) {
        throw new XspliceError(
          "EINVAL",
          `'${name}' has its own writable data and was reverted; unload and upload it again to re-apply`,
        );
      }
      if (!flags.nodeps) {
        const want = expectedDependency(reg, p);
        if (p.depends !== want) {
          throw new XspliceError(
            "EINVAL",
            `'${name}' depends on build-id ${p.depends}, but the top of its target is ${want}`,
          );
        }
      }
      return { kind: "apply", payload: p };
    }
    case "REVERT": {
      if (p.state === "CHECKED") throw new XspliceError("EINVAL", `'${name}' is not applied`);
      const top = appliedOnObject(reg, p.object.buildId)[0];
      if (top && top.name !== p.name) {
        throw new XspliceError(
          "EBUSY",
          `'${name}' is not the most recently applied payload of its target; revert '${top.name}' first`,
        );
      }
      return { kind: "revert", payload: p };
    }
    case "REPLACE": {
      if (p.state === "APPLIED") throw new XspliceError("EINVAL", `'${name}' is already applied`);
      if (p.reverted && p.hasOwnWritableData) {
        throw new XspliceError(
          "EINVAL",
          `'${name}' has its own writable data and was reverted; unload and upload it again to re-apply`,
        );
      }
      if (p.depends !== p.object.buildId) {
        throw new XspliceError(
          "EINVAL",
          `'${name}' depends on build-id ${p.depends}, but REPLACE needs the target's ${p.object.buildId}`,
        );
      }
      return { kind: "replace", payload: p, revert: appliedOnObject(reg, p.object.buildId) };
    }
    default: {
      const never: never = cmd;
      throw new XspliceError("EINVAL", `unknown action ${String(never)}`);
    }
  }
}

function updated(reg: RegistryState, change: (p: PayloadRecord) => PayloadRecord | undefined): RegistryState {
  const payloads: PayloadRecord[] = [];
  for (const p of reg.payloads) {
    const q = change(p);
    if (q) payloads.push(q);
  }
  return { ...reg, payloads, version: reg.version + 1 };
}

/** The registry after `name` became APPLIED with the given undo buffers. */
export function commitApplied(reg: RegistryState, name: string, undo: string[]): RegistryState {
  const seq = reg.nextSeq;
  const next = updated(reg, (p) =>
    p.name === name
      ? {
          ...p,
          state: "APPLIED",
          rc: 0,
          appliedSeq: seq,
          funcs: p.funcs.map((f, i) => ({ ...f, undo: undo[i] ?? "" })),
        }
      : p,
  );
  return { ...next, nextSeq: seq + 1 };
}

/** The registry after `name` was reverted to CHECKED. */
export function commitReverted(reg: RegistryState, name: string): RegistryState {
  return updated(reg, (p) =>
    p.name === name
      ? {
          ...p,
          state: "CHECKED",
          rc: 0,
          appliedSeq: 0,
          reverted: true,
          funcs: p.funcs.map((f) => ({ ...f, undo: "" })),
        }
      : p,
  );
}

/** The registry with `name`'s rc set (an action failed or is in progress); state unchanged. */
export function commitRc(reg: RegistryState, name: string, rc: number): RegistryState {
  return updated(reg, (p) => (p.name === name ? { ...p, rc } : p));
}

/** The registry with a new payload appended (UPLOAD). */
export function commitUploaded(reg: RegistryState, record: PayloadRecord): RegistryState {
  return { ...reg, payloads: [...reg.payloads, record], version: reg.version + 1 };
}

/** The registry without `name` (UNLOAD). */
export function commitUnloaded(reg: RegistryState, name: string): RegistryState {
  return updated(reg, (p) => (p.name === name ? undefined : p));
}
