/**
 * What the registry kept inside a target process records (SPEC §8): every
 * payload's name, state, rc, build-ids, regions, exports, patched functions with
 * their undo buffers, the LIST version stamp, and the journal of an operation in
 * flight. Plain JSON-able data: addresses and bytes are hex strings, so any
 * later xsplice run — another version, another shell — can read it back.
 */

/** A payload's state (SPEC §5). */
export type State = "CHECKED" | "APPLIED";

/** A memory region xsplice mapped in the target for a payload. */
export interface RegionRecord {
  /** "rx" (code and stubs), "rw" (writable data), "r" (read-only data and GOT). */
  kind: "rx" | "rw" | "r";
  /** Start address, hex. */
  addr: string;
  /** Length in bytes (page multiple). */
  size: number;
  /**
   * sha256 (hex) of the region's bytes as UPLOAD wrote them, for the regions
   * nothing changes later (rx and r): APPLY checks that the code it would jump
   * into is still there and intact (issue #11 item 2). Absent for rw regions
   * and in records of older runs.
   */
  digest?: string;
}

/** One patched (or to-be-patched) function of a payload. */
export interface FuncRecord {
  /** Symbol name of the old function, or "" for an address-only entry. */
  name: string;
  /** Run-time address of the old function (bias applied), hex. */
  oldAddr: string;
  oldSize: number;
  /** Run-time address of the replacement, hex; "0x0" for a NOP entry. */
  newAddr: string;
  newSize: number;
  /** Where the patch bytes go: oldAddr, or past an `endbr64`, hex. */
  patchAddr: string;
  /** The bytes APPLY writes at patchAddr, hex. */
  patch: string;
  /** The bytes APPLY overwrote (the undo buffer), hex; "" while not applied. */
  undo: string;
  /**
   * Livepatch-format expectation (SPEC §1): the bytes that must be at `oldAddr`
   * before APPLY, hex; absent or "" when the entry has none.
   */
  expect?: string;
}

/** One payload known to the registry. */
export interface PayloadRecord {
  name: string;
  state: State;
  /** 0, or a negative errno from the last action (SPEC §5). */
  rc: number;
  format: "xsplice" | "livepatch";
  /** The payload's own build-id, hex. */
  buildId: string;
  /** `.xsplice.target` build-id, hex. */
  target: string;
  /** `.xsplice.depends` build-id, hex. */
  depends: string;
  /** The target object this payload patches. */
  object: { path: string; buildId: string; bias: string };
  regions: RegionRecord[];
  /** Global symbols the payload defines, for later payloads to link against: name → address hex. */
  exports: Record<string, string>;
  funcs: FuncRecord[];
  /** Hook addresses, hex (SPEC §7). */
  hooks: {
    load: string[];
    unload: string[];
    preapply?: string;
    postapply?: string;
    prerevert?: string;
    postrevert?: string;
    apply?: string;
    revert?: string;
  };
  metadata: Record<string, string>;
  /** SPEC §5: a reverted payload with its own writable data cannot be applied again. */
  hasOwnWritableData: boolean;
  /** True once the payload has been reverted (with hasOwnWritableData, blocks re-APPLY). */
  reverted: boolean;
  /** Order of the last APPLY among payloads of the same object; 0 when not applied. */
  appliedSeq: number;
  /** Address of the `struct xsplice_payload` hooks receive, hex, or "" when there are no hooks. */
  payloadStruct: string;
}

/** One code write of an operation in flight: enough to redo or undo it. */
export interface JournalWrite {
  addr: string;
  /** Bytes before the operation, hex. */
  before: string;
  /** Bytes after the operation, hex. */
  after: string;
  /**
   * The range a thread must not execute in or return into while this write is
   * undone or redone (SPEC §6): the whole old function, hex `[start, end)`.
   * Absent in journals of older runs: recovery then guards the written bytes only.
   */
  guardStart?: string;
  guardEnd?: string;
}

/** A hook run inside the stop, and how far it got (issue #11 item 5: a rolled-back step's hooks are paired). */
export interface JournalHook {
  payload: string;
  kind: "load" | "unload" | "apply" | "revert";
  /** Its address, hex: a killed run's inject slot that called it (busy, done) proves it returned. */
  addr: string;
  /**
   * "running": committed right before the call; "done": it returned (an
   * apply/revert hook: with 0); "failed": it returned an error, crashed or
   * overran; "paired": done, and its pair hook has run since (nothing to undo).
   */
  phase: "running" | "done" | "failed" | "paired";
  /**
   * True for a pair hook run to undo another entry (load for an unload, …):
   * journaled like any hook, so that a run killed while it runs neither
   * loses it nor runs it twice, but never paired itself.
   */
  undo?: boolean;
}

/** A region an UPLOAD is mapping or an UNLOAD is unmapping. */
export interface JournalRegion {
  kind: "rx" | "rw" | "r";
  addr: string;
  size: number;
  /** As `RegionRecord.digest`. */
  digest?: string;
}

/**
 * The intent of an operation, recorded before it changes the process (SPEC §8).
 * A later run that finds it completes or rolls back the operation so every
 * payload ends wholly applied or wholly not, wholly loaded or wholly not:
 * - APPLY, REVERT, REPLACE: the code writes are rolled back to `before`, and
 *   each hook that ran in the stop is paired (load ↔ unload, apply ↔ revert);
 * - UNLOAD: rolled forward — the payload's regions that are still mapped are
 *   unmapped and its record dropped (the code is gone in part already);
 * - UPLOAD: rolled back — whatever of the new regions got mapped is unmapped.
 */
export interface Journal {
  cmd: "APPLY" | "REVERT" | "REPLACE" | "UNLOAD" | "UPLOAD";
  /** The payload the operation was asked for. */
  name: string;
  /** pid of the xsplice run that wrote it, for messages. */
  by: number;
  writes: JournalWrite[];
  /** The registry payload list as it will be when the operation completes. */
  outcome: PayloadRecord[];
  /** Hooks run inside the stop so far, in order. */
  hooks?: JournalHook[];
  /** UNLOAD and UPLOAD: the regions concerned. */
  regions?: JournalRegion[];
}

/** The whole registry. */
export interface RegistryState {
  /** The LIST version stamp (SPEC §5): bumped on every add, remove or state change. */
  version: number;
  /** Payloads in upload order. */
  payloads: PayloadRecord[];
  /** Next appliedSeq to hand out. */
  nextSeq: number;
  /** An operation in flight, if a run was stopped before finishing it. */
  journal?: Journal;
}

/** A registry with nothing in it. */
export function emptyRegistry(): RegistryState {
  return { version: 0, payloads: [], nextSeq: 1 };
}
