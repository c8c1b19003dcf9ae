/**
 * The build-id of an object mapped in a process, read from the mapped file
 * itself: through `/proc/PID/map_files/START-END` (the very file mapped, even
 * when the path on disk was replaced or deleted, or lives in another mount
 * namespace), else through the path only when its inode is the mapping's.
 * A path alone never decides (issue #14: a replaced file on disk is not the
 * mapped one).
 *
 * Only the ELF header, the program headers and the `PT_NOTE` segments are
 * read, each bounded, so a scan over every process of a host reads a few
 * KiB per distinct file, and the answer is cached by (device, inode, mtime,
 * size). The target is untrusted: a file that is not ELF, or whose headers do
 * not parse, has no build-id here.
 */
import { closeSync, fstatSync, openSync, readSync } from "node:fs";
import { BoundedCache } from "../bounded-cache.ts";
import { NT, PT } from "../elf/defs.ts";
import { parseHeader } from "../elf/header.ts";
import { noteAlign, parseNotes } from "../elf/note.ts";
import { parseProgramHeaders } from "../elf/segment.ts";
import { XspliceError } from "../errors.ts";
import type { Mapping } from "../process/maps.ts";

/** Bytes read for the headers: every program header table of a normal object fits. */
const HEAD_BYTES = 16 * 1024;
/** Largest note segment read (a build-id note is 36 bytes; GNU property notes a few dozen). */
const MAX_NOTE_BYTES = 64 * 1024;

/** Build-ids by (device, inode, mtime, size); `null` for a file without one. Owned by the caller. */
export type BuildIdCache = BoundedCache<string, string | null>;

/** A cache for `mappedBuildId`, bounded so a long-lived agent keeps a fixed amount of memory. */
export function createBuildIdCache(max = 4096): BuildIdCache {
  return new BoundedCache<string, string | null>(max);
}

function readAt(fd: number, offset: number, length: number): Uint8Array {
  const buf = new Uint8Array(length);
  let got = 0;
  while (got < length) {
    const n = readSync(fd, buf, got, length - got, offset + got);
    if (n === 0) break;
    got += n;
  }
  return buf.subarray(0, got);
}

/** The GNU build-id (lowercase hex) of the ELF file open as `fd`, or undefined. */
export function buildIdOfFd(fd: number, fileSize: number): string | undefined {
  const head = readAt(fd, 0, Math.min(HEAD_BYTES, fileSize));
  if (head.length < 64 || head[0] !== 0x7f || head[1] !== 0x45 || head[2] !== 0x4c || head[3] !== 0x46)
    return undefined;
  try {
    const dv = new DataView(head.buffer, head.byteOffset, head.byteLength);
    const { header, codec } = parseHeader(head, dv);
    for (const ph of parseProgramHeaders(head, dv, header, codec)) {
      if (ph.type !== PT.NOTE || ph.filesz === 0 || ph.filesz > MAX_NOTE_BYTES) continue;
      if (ph.offset + ph.filesz > fileSize) continue;
      const bytes = readAt(fd, ph.offset, ph.filesz);
      if (bytes.length !== ph.filesz) continue;
      const id = parseNotes(bytes, 0, bytes.length, noteAlign(ph.align), "PT_NOTE").find(
        (n) => n.name === "GNU" && n.type === NT.GNU_BUILD_ID,
      );
      if (id) return Buffer.from(id.desc).toString("hex");
    }
  } catch (err) {
    if (err instanceof XspliceError) return undefined; // a malformed ELF is nobody's patch target
    throw err;
  }
  return undefined;
}

/**
 * The build-id of the object whose offset-0 mapping is `head` in process
 * `pid`, or undefined (no build-id, not ELF, gone, or the path now names
 * another file and map_files is not readable). Without `cache` nothing is kept.
 */
export function mappedBuildId(
  pid: number,
  head: Mapping,
  cache: BuildIdCache = createBuildIdCache(1),
): string | undefined {
  const candidates = [
    `/proc/${pid}/map_files/${head.start.toString(16)}-${head.end.toString(16)}`,
    head.path,
  ];
  for (const path of candidates) {
    let fd: number;
    try {
      fd = openSync(path, "r");
    } catch {
      continue;
    }
    try {
      const st = fstatSync(fd, { bigint: true });
      if (st.ino !== head.inode || !st.isFile()) continue; // the path now names another file
      const key = `${st.dev}:${st.ino}:${st.mtimeNs}:${st.size}`;
      const hit = cache.get(key);
      if (hit !== undefined) return hit ?? undefined;
      const id = buildIdOfFd(fd, Number(st.size));
      cache.set(key, id ?? null);
      return id;
    } finally {
      closeSync(fd);
    }
  }
  return undefined;
}
