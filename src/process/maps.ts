/**
 * The mappings of a live process, parsed from `/proc/PID/maps`. Everything that
 * places payload memory (free ranges), finds mapped objects, or walks stacks
 * (SPEC §2 layout, §6 safety) starts from this list.
 */
import { readFileSync } from "node:fs";
import { XspliceError } from "../errors.ts";

/** Access rights of a mapping, from the four-letter perms column (`r-xp`). */
export interface MappingPerms {
  read: boolean;
  write: boolean;
  exec: boolean;
  /** `s` (MAP_SHARED) rather than `p` (private, copy-on-write). */
  shared: boolean;
}

/** One line of `/proc/PID/maps`. */
export interface Mapping {
  /** First byte. */
  start: bigint;
  /** One past the last byte. */
  end: bigint;
  perms: MappingPerms;
  /** File offset of `start` (0 for anonymous mappings). */
  offset: bigint;
  /** Device as the kernel prints it, `major:minor` in hex (e.g. `fe:00`). */
  dev: string;
  /** Inode number; 0 for anonymous mappings. */
  inode: bigint;
  /**
   * The path column without the ` (deleted)` suffix: a file path, a pseudo
   * name (`[heap]`, `[stack]`, `[vdso]`, `[vvar]`, `[vsyscall]`), a name given
   * with `PR_SET_VMA_ANON_NAME` (`[anon:xsplice…]`), or `""` for anonymous memory.
   */
  path: string;
  /** The file was deleted or replaced after it was mapped (` (deleted)`). */
  deleted: boolean;
}

// The path is anything up to the newline (the kernel escapes only "\n" in it): `.` would stop at a "\r"
// a file name may hold, and one such file would make the whole process unreadable (issue #11 item 8).
const LINE =
  /^([0-9a-f]+)-([0-9a-f]+) ([r-])([w-])([x-])([ps]) ([0-9a-f]+) ([0-9a-f]+:[0-9a-f]+) (\d+)(?: +([^\n]*))?$/;
const DELETED = " (deleted)";

/**
 * Parse the text of a `/proc/PID/maps` file. Lines are sorted by address, as
 * the kernel writes them. A line that does not match the kernel's format gives
 * `EINVAL` naming the line number.
 */
export function parseMaps(text: string): Mapping[] {
  const out: Mapping[] = [];
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    if (line === "") continue;
    const m = LINE.exec(line);
    if (!m) throw new XspliceError("EINVAL", `maps line ${i + 1} is not in the kernel's format: ${line}`);
    let path = m[10] ?? "";
    // A file mapping whose file was unlinked or replaced; anonymous pseudo names never carry it.
    const deleted = path.startsWith("/") && path.endsWith(DELETED);
    if (deleted) path = path.slice(0, -DELETED.length);
    out.push({
      start: BigInt(`0x${m[1]}`),
      end: BigInt(`0x${m[2]}`),
      perms: { read: m[3] === "r", write: m[4] === "w", exec: m[5] === "x", shared: m[6] === "s" },
      offset: BigInt(`0x${m[7]}`),
      dev: m[8]!,
      inode: BigInt(m[9]!),
      path,
      deleted,
    });
  }
  return out;
}

/**
 * Read and parse `/proc/PID/maps`. A process that does not exist (or has
 * exited) gives `ESRCH`; one we may not inspect gives `EPERM`.
 */
export function readMaps(pid: number): Mapping[] {
  return parseMaps(readProcFile(pid, "maps"));
}

/** Read `/proc/PID/<name>` as text, turning filesystem errors into the errno a caller of xsplice expects. */
export function readProcFile(pid: number, name: string): string {
  if (!Number.isSafeInteger(pid) || pid <= 0) throw new XspliceError("ESRCH", `no process ${pid}`, { pid });
  try {
    return readFileSync(`/proc/${pid}/${name}`, "utf8");
  } catch (err) {
    throw procError(err, pid, `/proc/${pid}/${name}`);
  }
}

/** Map an fs error on a `/proc/PID/…` path to an `XspliceError`: gone is `ESRCH`, refused is `EPERM`. */
export function procError(err: unknown, pid: number, what: string): XspliceError {
  const code = (err as { code?: string }).code;
  if (code === "ENOENT" || code === "ESRCH")
    return new XspliceError("ESRCH", `process ${pid} does not exist (${what})`, { pid }, { cause: err });
  if (code === "EACCES" || code === "EPERM")
    return new XspliceError("EPERM", `not allowed to read ${what}`, { pid }, { cause: err });
  return new XspliceError("EIO", `cannot read ${what}: ${(err as Error).message}`, { pid }, { cause: err });
}

/** The mapping that contains `addr`, by binary search over maps sorted by address. */
export function mappingAt(maps: readonly Mapping[], addr: bigint): Mapping | undefined {
  let lo = 0;
  let hi = maps.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    const m = maps[mid]!;
    if (addr < m.start) hi = mid - 1;
    else if (addr >= m.end) lo = mid + 1;
    else return m;
  }
  return undefined;
}

/** True for a mapping backed by a regular file (not anonymous memory or a pseudo name like `[vdso]`). */
export function isFileMapping(m: Mapping): boolean {
  return m.inode !== 0n && m.path.startsWith("/");
}

/**
 * True when `[addr, addr + size)` is mapped exactly, as one or more adjacent
 * anonymous mappings and nothing more: what xsplice's own `mmap` of a payload
 * region makes (a file mapping or a range that only partly exists is not it).
 */
export function mappedExactly(maps: readonly Mapping[], addr: bigint, size: number): boolean {
  const end = addr + BigInt(size);
  const covering = maps.filter((m) => m.start < end && m.end > addr);
  return (
    covering.length > 0 &&
    covering[0]!.start === addr &&
    covering.at(-1)!.end === end &&
    covering.every((m, i) => m.inode === 0n && (i === 0 || m.start === covering[i - 1]!.end))
  );
}
