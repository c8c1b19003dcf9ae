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

/**
 * The base address of the registry of `pid`, or undefined when the process
 * has none (no payload was ever uploaded). Mappings of one registry that the
 * kernel lists as several adjacent lines count once; two separate registries
 * are `EINVAL` (something other than xsplice made one, or memory was copied).
 */
export function findRegistry(pid: number, maps: readonly Mapping[] = readMaps(pid)): bigint | undefined {
  const starts: bigint[] = [];
  let lastEnd: bigint | undefined;
  for (const m of maps) {
    if (!isRegistryMapping(m)) {
      lastEnd = undefined;
      continue;
    }
    if (lastEnd !== m.start) starts.push(m.start);
    lastEnd = m.end;
  }
  if (starts.length > 1)
    throw new XspliceError(
      "EINVAL",
      `process ${pid} has ${starts.length} registries (${starts.map(hex).join(", ")})`,
      {
        pid,
      },
    );
  return starts[0];
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
  const base = findRegistry(pid, maps);
  if (base === undefined) return undefined;
  const mem = processMemory(pid);
  // Mapped but not yet initialised by the run creating it: no payloads yet (SPEC §8 readers).
  if (isUninitialised(mem, base)) return undefined;
  return readRegistry(mem, base);
}

/** What `createRegistry` made. */
export interface CreatedRegistry {
  base: bigint;
  /** How the mapping is named: `anon` (PR_SET_VMA_ANON_NAME) or `memfd` (fallback). */
  kind: "anon" | "memfd";
}

/**
 * Map a new registry in the stopped thread `tid` of `tracee` and write
 * `state` into it. Tries an anonymous private mapping named with
 * `prctl(PR_SET_VMA, PR_SET_VMA_ANON_NAME)`; where the kernel lacks it, a
 * private mapping of a `memfd_create("xsplice-registry")` file, whose fd is
 * closed again so that the target keeps no descriptor of ours. On failure
 * nothing stays mapped.
 */
export function createRegistry(tracee: Tracee, tid: number, state: RegistryState): CreatedRegistry {
  const size = BigInt(registrySize());
  const mem: RegistryMemory = tracee.memory;
  const anon = remoteMmap(tracee, tid, { length: size, prot: PROT.READ, flags: MAP.PRIVATE | MAP.ANONYMOUS });
  let kind: CreatedRegistry["kind"] = "anon";
  let base = anon;
  pausePoint("registry:mapped");
  try {
    // The name string must be in the target's memory: borrow the end of the
    // header page (unused by the layout), then zero it again.
    const name = new TextEncoder().encode(`${REGISTRY_NAME}\0`);
    const at = anon + 4096n - 64n;
    tracee.memory.write(at, name);
    let named = true;
    try {
      checkedSyscall(
        tracee,
        tid,
        SYS.prctl,
        [PR_SET_VMA, PR_SET_VMA_ANON_NAME, anon, size, at],
        "prctl(PR_SET_VMA_ANON_NAME)",
      );
    } catch (err) {
      if (!(err instanceof XspliceError) || (err.errno !== "EINVAL" && err.errno !== "EPERM")) throw err;
      named = false;
    }
    tracee.memory.write(at, new Uint8Array(name.length));
    if (!named) {
      remoteMunmap(tracee, tid, anon, size);
      base = 0n;
      base = mapMemfd(tracee, tid, size);
      kind = "memfd";
    }
    pausePoint("registry:named");
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

function mapMemfd(tracee: Tracee, tid: number, size: bigint): bigint {
  const fd = remoteMemfdCreate(tracee, tid, REGISTRY_NAME);
  try {
    checkedSyscall(tracee, tid, SYS.ftruncate, [BigInt(fd), size], `ftruncate(memfd ${fd}, ${size})`);
    return remoteMmap(tracee, tid, { length: size, prot: PROT.READ, flags: MAP.PRIVATE, fd });
  } finally {
    checkedSyscall(tracee, tid, SYS.close, [BigInt(fd)], `close(memfd ${fd})`);
  }
}
