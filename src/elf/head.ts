/**
 * `readElfHead`: the file header, the program headers and the GNU build-id of
 * an ELF file, read through a callback that returns byte ranges. That is all a
 * listing of a process's mapped objects needs (SPEC §2 target checks: which
 * object has the build-id, where it is loaded); reading each whole file for it
 * cost an upload most of its file work, libc and its debug file being 6 MB.
 * The section table, symbols and CFI stay for `readElf`, when a caller needs them.
 */
import { XspliceError } from "../errors.ts";
import { NT, PT } from "./defs.ts";
import { type ElfHeader, parseHeader } from "./header.ts";
import { noteAlign, parseNotes } from "./note.ts";
import { type ProgramHeader, parseProgramHeaders } from "./segment.ts";

/** What `readElfHead` gives. */
export interface ElfHead {
  header: ElfHeader;
  programHeaders: ProgramHeader[];
  /**
   * The `NT_GNU_BUILD_ID` of the first `PT_NOTE` segment holding one; undefined when
   * none does or a note segment is malformed (then only the section table can tell,
   * and the caller reads the whole file).
   */
  buildId: Uint8Array | undefined;
}

/** First bytes read: the header and, in every linker's output, the program headers and notes. */
const PREFIX = 4096;

/**
 * Read the head of an ELF file of `size` bytes. `read(offset, length)` returns exactly
 * those bytes (the caller's bounds: `offset + length <= size`). Header and program
 * header errors are thrown as `readElf` throws them (only `XspliceError`).
 */
export function readElfHead(read: (offset: number, length: number) => Uint8Array, size: number): ElfHead {
  let bytes = read(0, Math.min(size, PREFIX));
  let dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const { header, codec } = parseHeader(bytes, dv);
  const tableEnd = header.phoff + header.phnum * header.phentsize;
  if (tableEnd > bytes.length && tableEnd <= size) {
    bytes = read(0, tableEnd);
    dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }
  // A table past the end of the file is reported against what was read, which is then all of it.
  const programHeaders = parseProgramHeaders(bytes, dv, header, codec);
  let buildId: Uint8Array | undefined;
  for (const ph of programHeaders) {
    if (ph.type !== PT.NOTE || ph.filesz === 0) continue;
    if (ph.offset + ph.filesz > size) return { header, programHeaders, buildId: undefined };
    const data =
      ph.offset + ph.filesz <= bytes.length
        ? bytes.subarray(ph.offset, ph.offset + ph.filesz)
        : read(ph.offset, ph.filesz);
    try {
      buildId = parseNotes(data, 0, data.length, noteAlign(ph.align), "PT_NOTE").find(
        (n) => n.name === "GNU" && n.type === NT.GNU_BUILD_ID,
      )?.desc;
    } catch (err) {
      if (!(err instanceof XspliceError)) throw err;
      return { header, programHeaders, buildId: undefined };
    }
    if (buildId) break;
  }
  return { header, programHeaders, buildId };
}
