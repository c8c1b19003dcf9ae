/**
 * Which processes an `--all` operation (SPEC §14) acts on: every process that
 * maps a payload's target object — found by the build-id of what is mapped,
 * read through `/proc/PID/map_files/` (`build-id.ts`), never by path — or
 * every process whose registry holds a payload of a given name.
 *
 * A scan races with processes starting and exiting: one that vanishes or
 * denies access while being looked at is left out, and the operation on a
 * process found here still fails cleanly (`ESRCH`) if it exits before that.
 */
import { readdirSync, readFileSync } from "node:fs";
import { listAll } from "../core/api.ts";
import type { State } from "../core/registry/records.ts";
import { isFileMapping, type Mapping, parseMaps } from "../process/maps.ts";
import { type BuildIdCache, createBuildIdCache, mappedBuildId } from "./build-id.ts";

/** A process found by a scan. */
export interface FoundProcess {
  pid: number;
  /** `/proc/PID/comm`, printable characters only (the target names itself; it is not trusted). */
  comm: string;
}

/** A process that maps the object searched for. */
export interface MappingProcess extends FoundProcess {
  /** The object's path as `/proc/PID/maps` shows it (for display only). */
  path: string;
}

/** Options of the scans. */
export interface ScanOptions {
  /** Processes to leave out besides this one (e.g. a parent that runs the scan). */
  exclude?: readonly number[];
  /** Build-ids already read (an agent keeps one across scans). */
  cache?: BuildIdCache;
}

/** The numeric entries of /proc, ascending, without this process and `exclude`. */
export function listPids(exclude: readonly number[] = []): number[] {
  const skip = new Set([process.pid, ...exclude]);
  return readdirSync("/proc")
    .filter((d) => /^\d+$/.test(d))
    .map(Number)
    .filter((p) => !skip.has(p))
    .sort((a, b) => a - b);
}

/** `/proc/PID/comm` made safe to print: at most 16 printable ASCII characters; `?` when unreadable. */
export function commOf(pid: number): string {
  try {
    const raw = readFileSync(`/proc/${pid}/comm`, "latin1").replace(/\n$/, "");
    return raw.slice(0, 16).replace(/[^\x20-\x7e]/g, "?") || "?";
  } catch {
    return "?";
  }
}

function readMapsQuiet(pid: number): Mapping[] | undefined {
  try {
    return parseMaps(readFileSync(`/proc/${pid}/maps`, "utf8"));
  } catch {
    return undefined; // gone, a kernel thread's empty maps, or not ours to read
  }
}

/**
 * The object of `maps` whose build-id is `buildId` (lowercase hex), as the
 * path of its offset-0 mapping, or undefined. Each distinct file is read once
 * (`cache`).
 */
export function findMappedBuildId(
  pid: number,
  maps: readonly Mapping[],
  buildId: string,
  cache: BuildIdCache,
): string | undefined {
  const seen = new Set<string>();
  for (const m of maps) {
    if (m.offset !== 0n || !isFileMapping(m)) continue;
    const key = `${m.dev}:${m.inode}:${m.start}`;
    if (seen.has(key)) continue;
    seen.add(key);
    if (mappedBuildId(pid, m, cache) === buildId) return m.path;
  }
  return undefined;
}

/** Every process that maps an object with build-id `buildId` (hex, any case), by pid. */
export function processesMapping(buildId: string, opts: ScanOptions = {}): MappingProcess[] {
  const want = buildId.toLowerCase();
  const cache = opts.cache ?? createBuildIdCache();
  const out: MappingProcess[] = [];
  for (const pid of listPids(opts.exclude)) {
    const maps = readMapsQuiet(pid);
    if (!maps) continue;
    const path = findMappedBuildId(pid, maps, want, cache);
    if (path !== undefined) out.push({ pid, comm: commOf(pid), path });
  }
  return out;
}

/** A process whose registry holds the payload searched for, and the payload's state there. */
export interface HoldingProcess extends FoundProcess {
  state: State;
}

/**
 * Every process whose registry holds payload `name`, in one of `states`
 * (default both), by pid. Reads registries without stopping anything (`listAll`).
 */
export async function processesWithPayload(
  name: string,
  states: readonly State[] = ["CHECKED", "APPLIED"],
  opts: ScanOptions = {},
): Promise<HoldingProcess[]> {
  const skip = new Set([process.pid, ...(opts.exclude ?? [])]);
  const out: HoldingProcess[] = [];
  for (const p of await listAll()) {
    if (skip.has(p.pid)) continue;
    const entry = p.payloads.find((e) => e.name === name);
    if (entry && states.includes(entry.state))
      out.push({ pid: p.pid, comm: commOf(p.pid), state: entry.state });
  }
  return out;
}
