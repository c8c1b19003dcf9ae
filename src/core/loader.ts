/**
 * UPLOAD and UNLOAD in a live process (SPEC §2, §5): one straight pipeline,
 * each step a named function, everything computed before the process is
 * touched (SPEC §6), one cleanup exit that leaves the process exactly as it
 * was when anything fails.
 *
 *   checkName → checkSize → checkSignature → readPayload → findTarget →
 *   layout → place → link (SPEC §2 symbol order) → patch records → record
 *   → [session] recheck → [IFUNC resolvers] → map regions → resume →
 *   [link again with the IFUNC implementations] → write contents → commit
 */
import { createHash } from "node:crypto";
import { archFor } from "../arch/index.ts";
import { ERRNO, XspliceError } from "../errors.ts";
import { hex, hexBytes } from "../hex.ts";
import { OLD_ADDR_FIELD, XSPLICE_PAYLOAD } from "../payload/abi.ts";
import { DEFAULT_MAX_PAYLOAD_SIZE, type Payload, readPayload } from "../payload/index.ts";
import { type Mapping, mappedExactly, readMaps } from "../process/maps.ts";
import { ProcessMemory } from "../process/memory.ts";
import { findObjectByBuildId, type MappedObject, mappedObjects } from "../process/objects.ts";
import { pausePoint } from "../process/pause-point.ts";
import { MAP, PROT, remoteMmap, remoteMunmap } from "../process/syscalls.ts";
import { commitRc, commitUnloaded, commitUploaded, plan } from "./actions.ts";
import { createContext, type XspliceContext } from "./context.ts";
import { type LinkedImage, layoutSections, linkPayload, REGIONS, type Region } from "./link/index.ts";
import { oldAddressOf, patchRecords, payloadRefAddress } from "./load/funcs.ts";
import { IfuncResolver } from "./load/ifunc.ts";
import { PAYLOAD_STRUCT_SIZE, type Placement, placeRegions, reserveRw, stillFree } from "./load/place.ts";
import { policyInForce, tightenPolicy } from "./load/policy.ts";
import { symbolSources } from "./load/sources.ts";
import {
  checkName,
  checkNameFree,
  checkSignature,
  checkSize,
  type SignaturePolicy,
} from "./load/validate.ts";
import { type RegistrySnapshot, registrySize } from "./registry/format.ts";
import { emptyRegistry, type PayloadRecord, type RegistryState } from "./registry/records.ts";
import { readTargetRegistry } from "./registry/remote.ts";
import { safeStop } from "./safe-stop.ts";
import { openTarget, type TargetSession } from "./session.ts";

/** Options of UPLOAD. */
export interface UploadOptions extends SignaturePolicy {
  /** Largest payload accepted, in bytes (SPEC §2, default 16 MiB). */
  maxSize?: number;
  /** Most sections accepted (default 65,535). */
  maxSections?: number;
  /** How long to wait for another xsplice run holding the target (ms, default 10000). */
  waitMs?: number;
  /** Caches shared across calls (`createContext()`); default a fresh one. */
  context?: XspliceContext;
}

/** Where UPLOAD spent its time, in ms. */
export interface UploadTimings {
  /** Checks and reading the payload. */
  parse?: number;
  /** Finding the target, layout, placement, linking and the function checks. */
  link?: number;
  /** Seizing, mapping, writing the contents and committing. */
  write?: number;
  /** How long the target's threads were stopped in all (seize, the mapping stop, detach), in ms. */
  stopped?: number;
  /** IFUNC resolvers called in the stop (0 when the payload uses none or all were cached). */
  ifuncCalls?: number;
  /** ms of the stop spent in those calls. */
  ifunc?: number;
}

/** Everything UPLOAD computed before touching the process. */
export interface PreparedUpload {
  payload: Payload;
  target: MappedObject;
  placement: Placement;
  linked: LinkedImage;
  record: PayloadRecord;
  /** The registry generation the computation saw (0 when the process had none). */
  generation: bigint;
  /** The IFUNC implementations the link used, and those it still lacks. */
  ifuncs: IfuncResolver;
  /**
   * True when the link bound some IFUNC to its resolver as a placeholder:
   * the image must not be written before `ifuncs.resolvePending()` and a new link.
   */
  provisional: boolean;
}

/** What a second computation keeps from the first (IFUNC results, the mapped placement). */
export interface PrepareContext {
  /** The resolver of an earlier computation (its results), or the cache a new one uses. */
  ifuncs?: IfuncResolver;
  context?: XspliceContext;
  /** Use this placement instead of choosing one (its regions are already mapped). */
  placement?: Placement;
  /** The payload already read from the same `bytes` (reading a 1 MiB payload again costs ~5 ms). */
  payload?: Payload;
}

/** The target object by `.xsplice.target` build-id (SPEC §2: none `ENOENT` naming the build-id). */
export function findTarget(
  objects: readonly MappedObject[],
  payload: Payload,
  pid: number,
  refused: readonly string[] = [],
): MappedObject {
  const id = hexBytes(payload.target);
  const obj = findObjectByBuildId(objects, id);
  if (!obj)
    throw new XspliceError(
      "ENOENT",
      `no object with build-id ${id} (.xsplice.target) is mapped in process ${pid}${
        refused.length > 0 ? ` (not read: ${refused.join("; ")})` : ""
      }`,
      { pid },
    );
  return obj;
}

/** SPEC §2: the payload's own build-id equal to a loaded payload's `EEXIST`. */
function checkBuildIdFree(payload: Payload, reg: RegistryState): void {
  const id = hexBytes(payload.buildId);
  const dup = reg.payloads.find((p) => p.buildId === id);
  if (dup) throw new XspliceError("EEXIST", `payload build-id ${id} is already loaded as '${dup.name}'`);
}

/**
 * SPEC §2: a payload global that would shadow an exported symbol of a loaded
 * payload is `EEXIST`, except a replacement function (stacked payloads may
 * each define their version of it).
 */
function checkShadowing(payload: Payload, linked: LinkedImage, reg: RegistryState): void {
  const replacements = new Set(payload.funcs.flatMap((f) => (f.newSymbol ? [f.newSymbol.symbol.name] : [])));
  for (const name of linked.symbols.keys()) {
    if (replacements.has(name)) continue;
    const owner = reg.payloads.find((p) => p.exports[name] !== undefined);
    if (owner)
      throw new XspliceError("EEXIST", `symbol '${name}' is already exported by payload '${owner.name}'`, {
        symbol: name,
      });
  }
}

/** The section holding the patch entries (both formats), when it is placed in memory. */
function funcsSectionAddress(payload: Payload, linked: LinkedImage): bigint | undefined {
  const s = payload.elf.sectionByName(payload.format === "xsplice" ? ".xsplice.funcs" : ".livepatch.funcs");
  if (!s) return undefined;
  try {
    return linked.sectionAddress(s.index);
  } catch {
    return undefined;
  }
}

/**
 * Fill what the payload's entries leave to the loader (SPEC §1 `old_addr` = 0,
 * include/xsplice.h "old_addr with the load bias applied") in the linked
 * image, and build the `struct xsplice_payload` that hooks receive.
 */
function finishImage(
  payload: Payload,
  name: string,
  linked: LinkedImage,
  oldAddrs: bigint[],
  structOffset: number | undefined,
): bigint | undefined {
  const funcs = funcsSectionAddress(payload, linked);
  if (funcs !== undefined) {
    for (const [i, f] of payload.funcs.entries()) {
      const at = funcs + BigInt(f.entryOffset) + BigInt(OLD_ADDR_FIELD);
      const region = regionOf(linked, at);
      new DataView(linked.regions[region].buffer).setBigUint64(
        Number(at - linked.bases[region]),
        oldAddrs[i]!,
        true,
      );
    }
  }
  if (structOffset === undefined) return undefined;
  const rw = linked.regions.rw;
  const base = linked.bases.rw + BigInt(structOffset);
  const dv = new DataView(rw.buffer, rw.byteOffset + structOffset, PAYLOAD_STRUCT_SIZE);
  dv.setBigUint64(XSPLICE_PAYLOAD.name, base + BigInt(PAYLOAD_STRUCT_SIZE), true); // the name follows the struct
  dv.setBigInt64(XSPLICE_PAYLOAD.rc, 0n, true);
  dv.setBigUint64(XSPLICE_PAYLOAD.funcs, funcs ?? 0n, true);
  dv.setBigUint64(XSPLICE_PAYLOAD.count, BigInt(payload.funcs.length), true);
  rw.set(Buffer.from(`${name}\0`, "latin1"), structOffset + PAYLOAD_STRUCT_SIZE);
  return base;
}

function regionOf(linked: LinkedImage, addr: bigint): Region {
  for (const r of REGIONS) {
    const b = linked.bases[r];
    if (addr >= b && addr < b + BigInt(linked.regions[r].length)) return r;
  }
  throw new XspliceError("EINVAL", `address ${hex(addr)} is outside the payload's regions`);
}

/** Largest span of old functions' code read at once (beyond it, each function is read alone). */
const CODE_SPAN_MAX = 1 << 20;

/**
 * A reader of the old functions' first bytes: one read of the range covering all of them
 * (they usually sit close together in the target's text), each piece served from it; a piece
 * it does not cover (unmapped memory inside the range, or a span too wide) is read on its own,
 * which reports the failure. An entry whose old function cannot be found is left out here:
 * `patchRecords` reports it.
 */
function oldCodeReader(
  payload: Payload,
  target: MappedObject,
  mem: ProcessMemory,
): (addr: bigint, len: number) => Uint8Array {
  let lo: bigint | undefined;
  let hi = 0n;
  for (const f of payload.funcs) {
    let at: bigint;
    try {
      at = oldAddressOf(f, target);
    } catch {
      continue;
    }
    const end = at + BigInt(Math.min(f.oldSize, 32));
    if (lo === undefined || at < lo) lo = at;
    if (end > hi) hi = end;
  }
  const start = lo ?? 0n;
  const span = hi - start;
  const chunk =
    lo !== undefined && span <= BigInt(CODE_SPAN_MAX) ? mem.readSome(start, Number(span)) : undefined;
  return (addr, len) => {
    if (chunk && addr >= start && addr + BigInt(len) <= start + BigInt(chunk.length)) {
      const at = Number(addr - start);
      return chunk.slice(at, at + len);
    }
    return mem.read(addr, len);
  };
}

function hasHooks(payload: Payload): boolean {
  const h = payload.hooks;
  return [h.preapply, h.postapply, h.prerevert, h.postrevert, h.apply, h.revert].some((x) => x !== undefined);
}

/**
 * Everything of UPLOAD that needs only a view of the process (its maps,
 * objects, registry and code bytes), not the process stopped: read, place,
 * link and check the payload and build its registry record.
 */
export function prepareUpload(
  pid: number,
  name: string,
  bytes: Uint8Array,
  snapshot: RegistrySnapshot | undefined,
  maps: Mapping[],
  opts: UploadOptions = {},
  ctx: PrepareContext = {},
): PreparedUpload {
  const reg = snapshot?.state ?? emptyRegistry();
  const ifuncs = ctx.ifuncs ?? new IfuncResolver(pid, (ctx.context ?? createContext()).ifuncs);
  checkNameFree(name, reg);
  const payload =
    ctx.payload ??
    readPayload(bytes, {
      maxSize: opts.maxSize ?? DEFAULT_MAX_PAYLOAD_SIZE,
      maxSections: opts.maxSections,
    });
  const refused: string[] = [];
  const objects = mappedObjects(pid, { maps, cache: ctx.context?.objectFiles, refused });
  const target = findTarget(objects, payload, pid, refused);
  checkBuildIdFree(payload, reg);
  const arch = archFor(payload.machine);
  const withStruct = hasHooks(payload);
  const structBytes = PAYLOAD_STRUCT_SIZE + Buffer.byteLength(name) + 1;
  const base = layoutSections(payload.elf, arch);
  const { layout, offset: structOffset } = withStruct
    ? reserveRw(base, structBytes)
    : { layout: base, offset: 0 };
  const placement = ctx.placement ?? placeRegions(layout, target, maps);
  const linked = linkPayload(
    payload.elf,
    arch,
    layout,
    placement.bases,
    symbolSources(payload, target, objects, reg, ifuncs),
  );
  // One /proc/PID/mem descriptor and one read for every old function's first bytes: an
  // open, pread and close per function cost ~12 µs each, most of the checks of a
  // 500-function payload.
  const mem = new ProcessMemory(pid, { readOnly: true });
  let funcs: PayloadRecord["funcs"];
  try {
    funcs = patchRecords(payload, arch, target, linked, oldCodeReader(payload, target, mem), reg.payloads);
  } finally {
    mem.close();
  }
  checkShadowing(payload, linked, reg);
  const payloadStruct = finishImage(
    payload,
    name,
    linked,
    funcs.map((f) => BigInt(f.oldAddr)),
    withStruct ? structOffset : undefined,
  );
  const hooks: PayloadRecord["hooks"] = {
    load: payload.hooks.load.map((h) => hex(payloadRefAddress(linked, h))),
    unload: payload.hooks.unload.map((h) => hex(payloadRefAddress(linked, h))),
  };
  for (const k of ["preapply", "postapply", "prerevert", "postrevert", "apply", "revert"] as const) {
    const h = payload.hooks[k];
    if (h) hooks[k] = hex(payloadRefAddress(linked, h));
  }
  const record: PayloadRecord = {
    name,
    state: "CHECKED",
    rc: 0,
    format: payload.format,
    buildId: hexBytes(payload.buildId),
    target: hexBytes(payload.target),
    depends: hexBytes(payload.depends),
    object: {
      path: target.path,
      buildId: target.buildId ?? hexBytes(payload.target),
      bias: hex(target.bias),
    },
    regions: REGIONS.filter((r) => layout.sizes[r] > 0).map((r) => ({
      kind: r,
      addr: hex(placement.bases[r]),
      size: layout.sizes[r],
    })),
    exports: Object.fromEntries([...linked.symbols].map(([n, a]) => [n, hex(a)])),
    funcs,
    hooks,
    metadata: payload.metadata,
    hasOwnWritableData: payload.hasOwnWritableData,
    reverted: false,
    appliedSeq: 0,
    payloadStruct: payloadStruct === undefined ? "" : hex(payloadStruct),
  };
  return {
    payload,
    target,
    placement,
    linked,
    record,
    generation: snapshot?.generation ?? 0n,
    ifuncs,
    provisional: ifuncs.pending.length > 0,
  };
}

const PROT_OF: Record<Region, number> = {
  rx: PROT.READ | PROT.EXEC,
  rw: PROT.READ | PROT.WRITE,
  r: PROT.READ,
};

/** Map each region at its address with its final protection (SPEC §2), recording each in `mapped`. */
function mapRegions(
  session: TargetSession,
  record: PayloadRecord,
  mapped: { addr: bigint; size: number }[],
): void {
  for (const r of record.regions) {
    const addr = BigInt(r.addr);
    const got = remoteMmap(session.tracee, session.tid, {
      addr,
      length: r.size,
      prot: PROT_OF[r.kind],
      flags: MAP.PRIVATE | MAP.ANONYMOUS | MAP.FIXED_NOREPLACE,
    });
    if (got !== addr) {
      // A kernel without MAP_FIXED_NOREPLACE treats it as a hint: undo and refuse.
      remoteMunmap(session.tracee, session.tid, got, r.size);
      throw new XspliceError("ENOMEM", `could not map ${r.kind} region at ${hex(addr)} (got ${hex(got)})`, {
        address: addr,
      });
    }
    mapped.push({ addr, size: r.size });
    pausePoint("upload:mapped");
  }
}

/** Write the linked regions through `/proc/PID/mem` (works on the read-only and RX pages, SPEC §12). */
function writeRegions(session: TargetSession, linked: LinkedImage): void {
  for (const r of REGIONS)
    if (linked.regions[r].length > 0) session.memory.write(linked.bases[r], linked.regions[r]);
}

/**
 * The record with the digest of every region whose content never changes
 * after upload (code, read-only data and GOT): what APPLY checks (issue #11
 * item 2). Page-rounded regions are hashed whole, the tail as mapped: zeros.
 */
function withDigests(record: PayloadRecord, linked: LinkedImage): PayloadRecord {
  return {
    ...record,
    regions: record.regions.map((r) => {
      if (r.kind === "rw") return r;
      const bytes = new Uint8Array(r.size);
      bytes.set(linked.regions[r.kind].subarray(0, r.size));
      return { ...r, digest: createHash("sha256").update(bytes).digest("hex") };
    }),
  };
}

/** The UPLOAD journal: the regions about to be mapped (issue #11 item 6), rolled back by the next run. */
function uploadJournal(state: RegistryState, record: PayloadRecord): RegistryState {
  return {
    ...state,
    journal: {
      cmd: "UPLOAD",
      name: record.name,
      by: process.pid,
      writes: [],
      outcome: state.payloads,
      regions: record.regions.map((r) => ({ kind: r.kind, addr: r.addr, size: r.size })),
    },
  };
}

/** What an upload produced: the record committed, where the time went, and every stop it made. */
export interface UploadResult {
  record: PayloadRecord;
  timings: UploadTimings;
}

/** An upload checked and linked before the process is held: a prediction `uploadPrepared` confirms. */
export interface UploadPlan {
  name: string;
  bytes: Uint8Array;
  payload: Payload;
  prepared: PreparedUpload;
  opts: UploadOptions;
  /** ms spent checking and reading the payload, and placing and linking it. */
  parseMs: number;
  linkMs: number;
}

/**
 * The part of UPLOAD that needs no hold on the process: the name, size and
 * signature checks, reading the payload, placing and linking it against the
 * process as it is now (SPEC §6: parsing, linking and file work before).
 */
export function planUpload(
  pid: number,
  name: string,
  bytes: Uint8Array,
  opts: UploadOptions = {},
): UploadPlan {
  const t0 = performance.now();
  checkName(name);
  // The system policy holds for every caller, the library's too; options only tighten it (SPEC §9).
  const policy = tightenPolicy(policyInForce(), {
    requireSignature: opts.requireSignature,
    trustedKeys: opts.trustedKeys,
    maxSize: opts.maxSize,
    what: "trustedKeys: the key",
  });
  checkSize(bytes, policy.maxSize);
  checkSignature(bytes, policy);
  // Reading the payload alone first keeps a malformed file from costing a look at the process.
  const payload = readPayload(bytes, {
    maxSize: policy.maxSize,
    maxSections: opts.maxSections,
  });
  const t1 = performance.now();
  const prepared = prepareUpload(pid, name, bytes, readTargetRegistry(pid), readMaps(pid), opts, {
    payload,
    context: opts.context,
  });
  return { name, bytes, payload, prepared, opts, parseMs: t1 - t0, linkMs: performance.now() - t1 };
}

/**
 * UPLOAD (SPEC §2): check, load, link and record payload `bytes` as `name` in
 * process `pid`, state CHECKED. On any failure nothing of the payload
 * remains in the process and its registry is unchanged.
 */
export function uploadPayload(
  pid: number,
  name: string,
  bytes: Uint8Array,
  opts: UploadOptions = {},
): UploadResult {
  const up = planUpload(pid, name, bytes, opts);
  const session = openTarget(pid, { waitMs: opts.waitMs, context: opts.context });
  try {
    return uploadPrepared(session, up);
  } finally {
    session.close();
  }
}

/**
 * The held part of UPLOAD, as a transaction. The plan is checked against the
 * process as the hold sees it (another run may have changed the registry or
 * taken the range meanwhile: then it is linked again). In one stop the IFUNC
 * resolvers run, the registry is made if the process has none, the regions
 * are journaled (so that a killed run leaks nothing, issue #11 item 6) and
 * mapped; threads running again, the image is linked once more when an IFUNC
 * needed it, written, and the record committed with the journal cleared. A
 * failure after the journal is rolled back by `rollBackUpload`, whose own
 * failures are part of the error.
 */
export function uploadPrepared(session: TargetSession, up: UploadPlan): UploadResult {
  const pid = session.pid;
  const { name, bytes, payload, opts } = up;
  const t2 = performance.now();
  session.run();
  const ledgerBefore = session.tracee.stops;
  const maps = readMaps(pid);
  let prepared = up.prepared;
  if (
    session.generation !== prepared.generation ||
    !stillFree(maps, prepared.placement.start, prepared.placement.end)
  )
    prepared = prepareUpload(pid, name, bytes, session.snapshot, maps, opts, {
      ifuncs: prepared.ifuncs,
      payload,
    });
  const mapped: { addr: bigint; size: number }[] = [];
  const hadRegistry = session.base !== undefined;
  let journaled = false;
  try {
    const provisional = prepared.provisional;
    session.stop();
    try {
      // IFUNC resolvers run in the target (their choice is the process's), in this same stop.
      if (provisional) prepared.ifuncs.resolvePending(session.tracee, session.tid, maps);
      pausePoint("upload:stopped");
      session.commit(uploadJournal(session.state, prepared.record));
      journaled = true;
      pausePoint("upload:journaled");
      mapRegions(session, prepared.record, mapped);
    } finally {
      session.run();
    }
    if (provisional) {
      // Link again with the implementations, threads running: same maps, registry and placement.
      prepared = prepareUpload(pid, name, bytes, session.snapshot, maps, opts, {
        ifuncs: prepared.ifuncs,
        placement: prepared.placement,
        payload,
      });
      if (prepared.provisional)
        throw new XspliceError("EINVAL", "IFUNC symbols left unresolved after the stop");
    }
    writeRegions(session, prepared.linked);
    pausePoint("upload:written");
    const record = withDigests(prepared.record, prepared.linked);
    const { journal: _j, ...without } = session.state;
    session.commit(commitUploaded(without, record));
    const t3 = performance.now();
    return {
      record,
      timings: {
        parse: up.parseMs,
        link: up.linkMs,
        write: t3 - t2,
        stopped: session.tracee.stops.totalMs - ledgerBefore.totalMs,
        ifuncCalls: prepared.ifuncs.calls,
        ifunc: prepared.ifuncs.callMs,
      },
    };
  } catch (err) {
    const left = journaled || mapped.length > 0 ? rollBackUpload(session, mapped, hadRegistry) : [];
    if (left.length === 0) throw err;
    const e = err instanceof XspliceError ? err : new XspliceError("EIO", String(err));
    throw new XspliceError(
      e.errno,
      `${e.message}; cleaning up failed too: ${left.join("; ")} (the journal stays; the next xsplice run on this process removes what is left)`,
      e.where,
      { cause: err },
    );
  }
}

/**
 * Undo a failed upload in a short stop: unmap what was mapped, then clear the
 * journal — or unmap the registry itself when this upload made it. Returns
 * what it could not undo (empty when all went).
 */
function rollBackUpload(
  session: TargetSession,
  mapped: { addr: bigint; size: number }[],
  hadRegistry: boolean,
): string[] {
  if (session.tracee.execed) return [];
  const left: string[] = [];
  try {
    session.stop();
  } catch (err) {
    return [
      `could not stop the process to unmap ${mapped.map((m) => hex(m.addr)).join(", ")}: ${(err as Error).message}`,
    ];
  }
  try {
    for (const m of mapped) {
      try {
        remoteMunmap(session.tracee, session.tid, m.addr, m.size);
      } catch (err) {
        left.push(`unmapping ${hex(m.addr)}: ${(err as Error).message}`);
      }
    }
    if (left.length > 0) return left;
    try {
      if (!hadRegistry && session.base !== undefined)
        remoteMunmap(session.tracee, session.tid, session.base, registrySize());
      else if (session.state.journal) {
        const { journal: _j, ...without } = session.state;
        session.commit(without);
      }
    } catch (err) {
      left.push(`clearing the journal: ${(err as Error).message}`);
    }
    return left;
  } finally {
    session.run();
  }
}

/** The UNLOAD journal (issue #11 item 2): the regions about to be unmapped; the next run finishes it. */
function unloadJournal(state: RegistryState, p: PayloadRecord): RegistryState {
  return {
    ...commitRc(state, p.name, -ERRNO.EAGAIN),
    journal: {
      cmd: "UNLOAD",
      name: p.name,
      by: process.pid,
      writes: [],
      outcome: commitUnloaded(state, p.name).payloads,
      regions: p.regions.map((r) => ({ kind: r.kind, addr: r.addr, size: r.size, digest: r.digest })),
    },
  };
}

/**
 * UNLOAD (SPEC §5): a CHECKED payload's memory is freed and its record
 * dropped; APPLIED `EINVAL`; unknown `ENOENT`. Journaled first (a killed run
 * leaves the next one to finish it, never a record whose code is half gone),
 * then, in a safe stop, the regions are unmapped and the record dropped with
 * the journal cleared (with `leaveStopped`, the threads stay stopped for the
 * caller to detach from that stop).
 */
export function unloadPayload(
  session: TargetSession,
  name: string,
  opts: { timeoutMs?: number; leaveStopped?: boolean } = {},
): void {
  const timeoutMs = opts.timeoutMs ?? 1000;
  session.run(); // held, not stopped, until the safe stop below
  const initial = session.state;
  const p = plan(initial, name, "UNLOAD");
  // REVERT leaves the payload's code mapped, and a thread may still run in it or return into it
  // (a preempted caller of the replacement): unmap only in a safe stop (SPEC §6), else EBUSY.
  const guards = p.payload.regions
    .filter((r) => r.kind === "rx")
    .map((r) => ({
      start: BigInt(r.addr),
      end: BigInt(r.addr) + BigInt(r.size),
      func: `the code of '${name}'`,
      payload: name,
    }));
  session.commit(unloadJournal(initial, p.payload));
  pausePoint("unload:journaled");
  try {
    safeStop(session, guards, { timeoutMs, leaveStopped: opts.leaveStopped === true }, () => {
      for (const r of p.payload.regions) {
        remoteMunmap(session.tracee, session.tid, BigInt(r.addr), r.size);
        pausePoint("unload:unmapped");
      }
      session.commit(commitUnloaded(initial, name));
      pausePoint("unload:committed");
    });
  } catch (err) {
    if (session.tracee.execed) throw err;
    // Not one region unmapped (no safe stop): as if it never began. Otherwise the journal stays.
    const maps = readMaps(session.pid);
    const mappedAll = p.payload.regions.every((r) => mappedExactly(maps, BigInt(r.addr), r.size));
    if (mappedAll && session.state.journal?.cmd === "UNLOAD") {
      const e = err instanceof XspliceError ? err : new XspliceError("EIO", String(err));
      session.commit(commitRc(initial, name, e.rc));
    }
    throw err;
  }
}
