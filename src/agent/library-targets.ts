/**
 * Library targets mapped in a running process, for the library gate
 * (`library-gate.ts`): an offset-0 mapping whose build-id (read through
 * `/proc/PID/map_files/`, `build-id.ts`) is a payload's target and which is
 * not the process's own program. The gate marks each one's inode so that
 * later opens of it — start-up of a new process, `dlopen` — wait for it.
 */
import { statSync } from "node:fs";
import { isFileMapping, type Mapping } from "../process/maps.ts";
import { type BuildIdCache, mappedBuildId } from "./build-id.ts";
import type { LibraryMark } from "./library-gate.ts";

/** A library target found, keyed by its mapped identity (`dev:inode` as maps prints them). */
export interface FoundLibrary {
  key: string;
  mark: LibraryMark;
}

/**
 * The mappings of `maps` (process `pid`) whose build-id is in `targets` and
 * that are not `/proc/PID/exe`; identities in `known` are skipped unread.
 */
export function libraryMappings(
  pid: number,
  maps: readonly Mapping[],
  targets: ReadonlySet<string>,
  cache: BuildIdCache,
  known: { has(key: string): boolean },
): FoundLibrary[] {
  let exeIno: bigint | undefined;
  try {
    exeIno = statSync(`/proc/${pid}/exe`, { bigint: true }).ino;
  } catch {
    return []; // gone, or a kernel thread
  }
  const out: FoundLibrary[] = [];
  const seen = new Set<string>();
  for (const m of maps) {
    if (m.offset !== 0n || !isFileMapping(m) || m.inode === exeIno) continue;
    const key = `${m.dev}:${m.inode}`;
    if (seen.has(key) || known.has(key)) continue;
    seen.add(key);
    const id = mappedBuildId(pid, m, cache);
    if (id !== undefined && targets.has(id))
      out.push({ key, mark: { buildId: id, pid, start: m.start, end: m.end } });
  }
  return out;
}
