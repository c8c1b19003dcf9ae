/**
 * Synthetic `/proc/PID/maps` entries for unit tests that reason about a
 * process's address space (stack scans, safe-stop checks) without a process.
 */
import type { Mapping } from "../../src/process/maps.ts";

/**
 * A private, readable mapping of `[start, end)` backed by `path`: executable
 * code when `exec`, writable data (a stack, a heap) otherwise.
 */
export function mapping(start: bigint, end: bigint, path: string, exec: boolean): Mapping {
  return {
    start,
    end,
    perms: { read: true, write: !exec, exec, shared: false },
    offset: 0n,
    dev: "00:00",
    inode: 0n,
    path,
    deleted: false,
  };
}
