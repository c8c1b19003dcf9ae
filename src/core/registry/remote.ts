/**
 * The registry inside a live target process (SPEC §8): finding its mapping by
 * name in `/proc/PID/maps`, reading it from any shell without stopping the
 * process, and creating it when the first payload is uploaded.
 *
 * The mapping is `MAP_PRIVATE` so that a forked child gets its own copy, and
 * `PROT_READ` so that a stray write of the target cannot corrupt it: xsplice
 * writes through `/proc/PID/mem`, which the kernel forces onto read-only
 * pages (SPEC §12). Untouched pages of the (sparse) slots cost nothing.
 */

import { XspliceError } from "../../errors.ts";
import { hex } from "../../hex.ts";
import { descriptorsOpenOn } from "../../process/descriptors.ts";
import { type Mapping, readMaps } from "../../process/maps.ts";
import { readMemory, writeMemory } from "../../process/memory.ts";
import { pausePoint } from "../../process/pause-point.ts";
import {
  checkedSyscall,
  MAP,
  PROT,
  remoteMemfdCreate,
  remoteMmap,
  remoteMunmap,
  SYS,
} from "../../process/syscalls.ts";
import type { Tracee } from "../../process/threads.ts";
import {
  initRegistry,
  isUninitialised,
  REGISTRY_NAME,
  type RegistryMemory,
  type RegistrySnapshot,
  readRegistry,
  registrySize,
} from "./format.ts";
import type { RegistryState } from "./records.ts";

/** `/proc/PID/maps` path of a registry named with `PR_SET_VMA_ANON_NAME` (Linux ≥ 5.17). */
export const ANON_REGISTRY_PATH = `[anon:${REGISTRY_NAME}]`;
/** `/proc/PID/maps` path of a registry backed by a memfd (the fallback; shown ` (deleted)`). */
export const MEMFD_REGISTRY_PATH = `/memfd:${REGISTRY_NAME}`;

const PR_SET_VMA = 0x53564d41n;
const PR_SET_VMA_ANON_NAME = 0n;

/** True for a mapping that is an xsplice registry by its name. */
export function isRegistryMapping(m: Mapping): boolean {
  return m.path === ANON_REGISTRY_PATH || m.path === MEMFD_REGISTRY_PATH;
}

/** Where a registry is mapped: its base and how many contiguous bytes its mapping lines cover. */
export interface RegistryMapping {
  base: bigint;
  size: bigint;
}

/**
 * The registry mapping of `pid`, or undefined when the process has none (no
 * payload was ever uploaded). Mappings of one registry that the kernel lists
 * as several adjacent lines count once; two separate registries are `EINVAL`
 * (something other than xsplice made one, or memory was copied).
 */
export function findRegistryMapping(
  pid: number,
  maps: readonly Mapping[] = readMaps(pid),
): RegistryMapping | undefined {
  const found: RegistryMapping[] = [];
  let last: Mapping | undefined;
  for (const m of maps) {
    if (!isRegistryMapping(m)) {
      last = undefined;
      continue;
    }
    // One registry split into lines continues the same object at the next offset; two registries
    // mapped side by side (two memfds, which any process can make) do not.
    const continues =
      last !== undefined &&
      last.end === m.start &&
      last.dev === m.dev &&
      last.inode === m.inode &&
      last.offset + (last.end - last.start) === m.offset;
    if (!continues) found.push({ base: m.start, size: 0n });
    found[found.length - 1]!.size += m.end - m.start;
    last = m;
  }
  if (found.length > 1)
    throw new XspliceError(
      "EINVAL",
      `process ${pid} has ${found.length} registries (${found.map((f) => hex(f.base)).join(", ")})`,
      { pid },
    );
  return found[0];
}

/** The base address of the registry of `pid` (see `findRegistryMapping`), or undefined. */
export function findRegistry(pid: number, maps: readonly Mapping[] = readMaps(pid)): bigint | undefined {
  return findRegistryMapping(pid, maps)?.base;
}

/** A `RegistryMemory` over the memory of `pid`, through `/proc/PID/mem`. */
export function processMemory(pid: number): RegistryMemory {
  return {
    read: (addr, len) => readMemory(pid, addr, len),
    write: (addr, bytes) => writeMemory(pid, addr, bytes),
  };
}

/**
 * The registry of `pid` as it is now, without stopping the process (GET and
 * LIST from any shell, SPEC §5, §8): undefined when there is none. A reader
 * never sees a half-written state (the double-buffered layout of `format.ts`).
 */
export function readTargetRegistry(pid: number, maps?: readonly Mapping[]): RegistrySnapshot | undefined {
  const found = findRegistryMapping(pid, maps);
  if (found === undefined) return undefined;
  const mem = processMemory(pid);
  // Mapped but not yet initialised by the run creating it: no payloads yet (SPEC §8 readers).
  if (isUninitialised(mem, found.base)) return undefined;
  return readRegistry(mem, found.base, found.size);
}

/** What `createRegistry` made. */
export interface CreatedRegistry {
  base: bigint;
  /** How the mapping is named: `memfd` (a memfd's name) or `anon` (PR_SET_VMA_ANON_NAME, the fallback). */
  kind: "anon" | "memfd";
}

/**
 * Map a new registry in the stopped thread `tid` of `tracee` and write
 * `state` into it: a private mapping of a `memfd_create("xsplice-registry")`
 * file, whose descriptor is closed again so that the target keeps none of
 * ours. The memfd comes first because every step of it is recognisable if
 * xsplice is killed right after it: the descriptor carries the name from its
 * creation (`leakedRegistryDescriptors`, closed by the next run) and the
 * mapping from its mmap (a registry whose magic is still zero, which the next
 * run initialises). An anonymous mapping gets its name only from a second
 * system call, and one killed in between was 8 MiB nobody could tell was ours
 * (issue #11 items 3, 6); it is the fallback for a kernel without memfd. On
 * failure nothing stays mapped.
 */
export function createRegistry(tracee: Tracee, tid: number, state: RegistryState): CreatedRegistry {
  const size = BigInt(registrySize());
  const mem: RegistryMemory = tracee.memory;
  let kind: CreatedRegistry["kind"] = "memfd";
  let base = 0n;
  try {
    try {
      base = mapMemfd(tracee, tid, size);
    } catch (err) {
      if (!(err instanceof XspliceError) || err.errno !== "ENOSYS") throw err;
      base = mapNamedAnon(tracee, tid, size);
      kind = "anon";
    }
    initRegistry(mem, base, state);
    return { base, kind };
  } catch (err) {
    if (base !== 0n) {
      try {
        remoteMunmap(tracee, tid, base, size);
      } catch {
        // Already failing; report the first error.
      }
    }
    throw err;
  }
}

/** An anonymous mapping named with `prctl(PR_SET_VMA_ANON_NAME)` (Linux ≥ 5.17 with CONFIG_ANON_VMA_NAME). */
function mapNamedAnon(tracee: Tracee, tid: number, size: bigint): bigint {
  const anon = remoteMmap(tracee, tid, { length: size, prot: PROT.READ, flags: MAP.PRIVATE | MAP.ANONYMOUS });
  try {
    // The name string must be in the target's memory: borrow the end of the
    // header page (unused by the layout), then zero it again.
    const name = new TextEncoder().encode(`${REGISTRY_NAME}\0`);
    const at = anon + 4096n - 64n;
    tracee.memory.write(at, name);
    checkedSyscall(
      tracee,
      tid,
      SYS.prctl,
      [PR_SET_VMA, PR_SET_VMA_ANON_NAME, anon, size, at],
      "prctl(PR_SET_VMA_ANON_NAME)",
    );
    tracee.memory.write(at, new Uint8Array(name.length));
    return anon;
  } catch (err) {
    try {
      remoteMunmap(tracee, tid, anon, size);
    } catch {
      // Already failing; report the first error.
    }
    throw err;
  }
}

function mapMemfd(tracee: Tracee, tid: number, size: bigint): bigint {
  const fd = remoteMemfdCreate(tracee, tid, REGISTRY_NAME);
  pausePoint("registry:memfd");
  try {
    checkedSyscall(tracee, tid, SYS.ftruncate, [BigInt(fd), size], `ftruncate(memfd ${fd}, ${size})`);
    const base = remoteMmap(tracee, tid, { length: size, prot: PROT.READ, flags: MAP.PRIVATE, fd });
    pausePoint("registry:mapped");
    return base;
  } finally {
    checkedSyscall(tracee, tid, SYS.close, [BigInt(fd)], `close(memfd ${fd})`);
  }
}

/**
 * Descriptors of `pid` open on a registry memfd: only ever leftovers of a
 * creation killed before its `close` (a living creation holds the process
 * exclusively, and closes its descriptor before it lets go).
 */
export function leakedRegistryDescriptors(pid: number): number[] {
  return descriptorsOpenOn(pid, MEMFD_REGISTRY_PATH);
}

/** Close what `leakedRegistryDescriptors` finds, in the stopped thread `tid`; returns how many. */
export function closeLeakedRegistryDescriptors(tracee: Tracee, tid: number): number {
  const fds = leakedRegistryDescriptors(tracee.pid);
  for (const fd of fds) checkedSyscall(tracee, tid, SYS.close, [BigInt(fd)], `close(leaked memfd ${fd})`);
  return fds.length;
}
