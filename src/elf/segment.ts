/**
 * Program headers. The table is read eagerly (it is small) and checked to lie
 * in the file; a segment's own range is checked only when its contents are
 * read, since payloads have none and the payload reader refuses them (SPEC §2).
 */
import { elfError } from "../errors.ts";
import { inBounds, toSafe } from "./_check.ts";
import type { RecordCodec } from "./_raw.ts";
import { EHDR_FIELD, type ElfHeader } from "./header.ts";

/** One program header, widened; `offset`/`filesz` are file positions, the rest addresses. */
export interface ProgramHeader {
  /** `PT` */
  type: number;
  /** `PF` bits */
  flags: number;
  offset: number;
  vaddr: bigint;
  paddr: bigint;
  filesz: number;
  memsz: bigint;
  align: bigint;
  /** File offset of this program header, for error messages. */
  headerOffset: number;
}

/**
 * Read the program header table. `e_phentsize` smaller than `Elf64_Phdr`, the
 * table outside the file, or `e_phnum` PN_XNUM (extended numbering): errors.
 */
export function parseProgramHeaders(
  bytes: Uint8Array,
  dv: DataView,
  header: ElfHeader,
  codec: RecordCodec,
): ProgramHeader[] {
  const { phoff, phnum, phentsize } = header;
  if (phnum === 0) return [];
  if (phnum === 0xffff)
    throw elfError("EOPNOTSUPP", EHDR_FIELD.phnum, "e_phnum is PN_XNUM (extended numbering)");
  if (phentsize < codec.size.phdr) {
    throw elfError("EINVAL", EHDR_FIELD.phentsize, "e_phentsize smaller than Elf64_Phdr", phentsize);
  }
  if (!inBounds(phoff, phnum * phentsize, bytes.length)) {
    throw elfError(
      "EINVAL",
      EHDR_FIELD.phoff,
      `program header table (${phnum} x ${phentsize}) outside the file`,
      phoff,
    );
  }
  const out: ProgramHeader[] = [];
  for (let i = 0; i < phnum; i++) {
    const at = phoff + i * phentsize;
    const raw = codec.readPhdr(dv, at);
    out.push({
      type: raw.type,
      flags: raw.flags,
      offset: toSafe(raw.offset, at + 8, `program header ${i} p_offset`),
      vaddr: raw.vaddr,
      paddr: raw.paddr,
      filesz: toSafe(raw.filesz, at + 32, `program header ${i} p_filesz`),
      memsz: raw.memsz,
      align: raw.align,
      headerOffset: at,
    });
  }
  return out;
}

/** The segment's file contents as a view; EINVAL when they lie outside the file. */
export function segmentData(bytes: Uint8Array, ph: ProgramHeader): Uint8Array {
  if (!inBounds(ph.offset, ph.filesz, bytes.length)) {
    throw elfError(
      "EINVAL",
      ph.headerOffset + 8,
      `segment (0x${ph.filesz.toString(16)} bytes) outside the file`,
      ph.offset,
    );
  }
  return bytes.subarray(ph.offset, ph.offset + ph.filesz);
}
