/**
 * Library targets that no running process maps yet, found as files (issue
 * #14, docs/agent.md "A library no process maps yet"). Without a process to
 * show the library's inode, the library gate has nothing to mark, and the
 * first process to load it would run unpatched until the next scan. The
 * payload's own metadata (written by `xsplice build` for a shared-library
 * target, `target-file=` and `target-soname=`) says where to look: the file
 * the payload was built against, and the soname in the standard library
 * directories. These paths come from the payload (which the signature policy
 * vouches for) and from this fixed list, never from a target process; a file
 * is taken only if it is a regular ELF file whose build-id is the target's.
 */
import { closeSync, statSync } from "node:fs";
import { isAbsolute, join } from "node:path";
import { openRegularFile } from "../regular-file.ts";
import { type BuildIdCache, buildIdOfFd } from "./build-id.ts";
import type { LibraryMark } from "./library-gate.ts";
import { devString } from "./library-parker.ts";

/** Where a payload says its library target may be (`.modinfo` `target-file=`, `target-soname=`). */
export interface LibraryHints {
  /** The build-id of the target (hex). */
  target: string;
  file?: string;
  soname?: string;
}

/** The directories a soname is looked up in: the dynamic linker's defaults, multiarch first. */
export function libraryDirs(arch: string = process.arch): string[] {
  const triplet = arch === "arm64" ? "aarch64-linux-gnu" : "x86_64-linux-gnu";
  return [
    `/lib/${triplet}`,
    `/usr/lib/${triplet}`,
    "/lib64",
    "/usr/lib64",
    "/lib",
    "/usr/lib",
    "/usr/local/lib",
  ];
}

/** The paths to try for one payload's target, in order, each once. */
export function candidatePaths(h: LibraryHints, dirs: readonly string[] = libraryDirs()): string[] {
  const out: string[] = [];
  if (h.file && isAbsolute(h.file)) out.push(h.file);
  // A soname is a file name: one with a slash (or `..`) is not looked up anywhere.
  if (h.soname && !h.soname.includes("/") && h.soname !== "." && h.soname !== "..")
    for (const d of dirs) out.push(join(d, h.soname));
  return [...new Set(out)];
}

/**
 * Every file of `candidatePaths(h)` that is a regular file with the target's
 * build-id, one per inode, as library marks for the gate (keyed `dev:inode`
 * as maps prints them, so that they meet the marks found through processes);
 * inodes already `known` are skipped, and so are missing or unreadable paths.
 */
export function findLibraryFiles(
  h: LibraryHints,
  cache: BuildIdCache,
  known: { has(key: string): boolean },
  dirs?: readonly string[],
): { key: string; mark: LibraryMark }[] {
  const out: { key: string; mark: LibraryMark }[] = [];
  const seen = new Set<string>();
  for (const path of candidatePaths(h, dirs)) {
    // A stat first: a file marked already is not opened again (each open of a marked inode is a
    // permission event the gate must answer, and this runs at every read of the directory).
    let before: ReturnType<typeof statSync> | undefined;
    try {
      before = statSync(path);
    } catch {
      continue;
    }
    if (known.has(`${devString(BigInt(before.dev))}:${before.ino}`)) continue;
    let opened: ReturnType<typeof openRegularFile>;
    try {
      opened = openRegularFile(path, path);
    } catch {
      continue;
    }
    try {
      const st = opened.stat;
      const key = `${devString(BigInt(st.dev))}:${st.ino}`;
      if (known.has(key) || seen.has(key)) continue; // e.g. /lib and /usr/lib, one directory
      seen.add(key);
      const stamp = `file:${st.dev}:${st.ino}:${st.mtimeMs}:${st.size}`;
      let id = cache.get(stamp);
      if (id === undefined) {
        id = buildIdOfFd(opened.fd, st.size) ?? null;
        cache.set(stamp, id);
      }
      if (id === h.target) out.push({ key, mark: { buildId: h.target, path } });
    } finally {
      closeSync(opened.fd);
    }
  }
  return out;
}
