/**
 * A process's dynamic linker as the library gate needs it (docs/agent.md,
 * "Library targets at start-up and at `dlopen`"): where its code is (to tell
 * a loader's `openat` from anyone else's), and the run-time addresses of
 * `_dl_debug_state` (the function the linker calls for debuggers each time
 * its list of objects changes) and `_r_debug` (whose `r_state` says whether
 * that list is consistent).
 *
 * Found without trusting the process: the linker's load address is
 * `AT_BASE` of `/proc/PID/auxv` (the kernel's copy), its file is the one
 * mapped there, read through `/proc/PID/map_files/` (never a path the
 * process names), and its symbols come from that file's `.dynsym`.
 */
import { closeSync, fstatSync, openSync, readFileSync } from "node:fs";
import { BoundedCache } from "../bounded-cache.ts";
import { readElf } from "../elf/file.ts";
import { XspliceError } from "../errors.ts";
import type { Mapping } from "../process/maps.ts";

/** `AT_BASE` in the auxiliary vector (<elf.h>): the program interpreter's load address. */
const AT_BASE = 7n;
/** A dynamic linker is well under this; a larger "linker" is not read. */
const MAX_LINKER_BYTES = 16 * 1024 * 1024;
/** `offsetof(struct r_debug, r_state)` (<link.h>, 64-bit). */
export const R_STATE_OFFSET = 24n;
/** `RT_CONSISTENT` of `enum r_state`: the list of objects is complete. */
export const RT_CONSISTENT = 0;

/** The dynamic linker of one process. */
export interface DynamicLinker {
  /** Its executable mappings (`[start, end)`). */
  code: readonly { start: bigint; end: bigint }[];
  /** Run-time address of `_dl_debug_state`. */
  debugState: bigint;
  /** Run-time address of `_r_debug`. */
  rDebug: bigint;
}

/** Link-time addresses of the two symbols, by file identity. */
type LinkerSymbols = { debugState: bigint; rDebug: bigint };
const symbolCache = new BoundedCache<string, LinkerSymbols>(16);

/** Opens a file for reading, or throws (the gate refuses to open a file it holds a permission mark on). */
export type OpenForRead = (path: string) => number;

/** `AT_BASE` of `pid`, or 0 (a static program has no interpreter). */
export function interpreterBase(pid: number): bigint {
  const auxv = readFileSync(`/proc/${pid}/auxv`);
  for (let at = 0; at + 16 <= auxv.length; at += 16)
    if (auxv.readBigUInt64LE(at) === AT_BASE) return auxv.readBigUInt64LE(at + 8);
  return 0n;
}

function linkerSymbols(fd: number): LinkerSymbols {
  const st = fstatSync(fd, { bigint: true });
  const key = `${st.dev}:${st.ino}:${st.mtimeNs}:${st.size}`;
  const hit = symbolCache.get(key);
  if (hit) return hit;
  if (st.size > BigInt(MAX_LINKER_BYTES))
    throw new XspliceError("ENOEXEC", `dynamic linker of ${st.size} bytes (more than ${MAX_LINKER_BYTES})`);
  const bytes = readFileSync(fd);
  const syms = readElf(bytes).dynamicSymbols();
  const find = (name: string) => syms.find((s) => s.name === name && s.section.kind === "section")?.value;
  const debugState = find("_dl_debug_state");
  const rDebug = find("_r_debug");
  if (debugState === undefined || rDebug === undefined)
    throw new XspliceError("ENOENT", "the dynamic linker exports no _dl_debug_state or _r_debug");
  const out = { debugState, rDebug };
  symbolCache.set(key, out);
  return out;
}

/**
 * The dynamic linker of `pid` (whose maps are `maps`), or undefined when the
 * program has none (static) or the mapping at `AT_BASE` is not a file.
 */
export function dynamicLinkerOf(
  pid: number,
  maps: readonly Mapping[],
  open: OpenForRead = (p) => openSync(p, "r"),
): DynamicLinker | undefined {
  const base = interpreterBase(pid);
  if (base === 0n) return undefined;
  const head = maps.find((m) => m.start === base && m.offset === 0n && m.inode !== 0n);
  if (!head) return undefined;
  const code = maps
    .filter((m) => m.inode === head.inode && m.dev === head.dev && m.perms.exec)
    .map((m) => ({ start: m.start, end: m.end }));
  const fd = open(`/proc/${pid}/map_files/${head.start.toString(16)}-${head.end.toString(16)}`);
  try {
    if (fstatSync(fd, { bigint: true }).ino !== head.inode) return undefined;
    const s = linkerSymbols(fd);
    // ld.so is linked at 0, so AT_BASE is its load bias.
    return { code, debugState: base + s.debugState, rDebug: base + s.rDebug };
  } finally {
    closeSync(fd);
  }
}

/** True when `addr` lies in the linker's code. */
export function inLinkerCode(ld: DynamicLinker, addr: bigint): boolean {
  return ld.code.some((r) => r.start <= addr && addr < r.end);
}
