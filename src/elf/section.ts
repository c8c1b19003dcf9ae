/**
 * The section header table, read eagerly and checked as a whole: table inside
 * the file, entry size, `e_shstrndx`, every section's data inside the file and
 * every name inside `.shstrtab` (SPEC §2). Section contents are views on the
 * file's bytes, never copies.
 */
import { elfError } from "../errors.ts";
import { inBounds, sectionError, toSafe } from "./_check.ts";
import type { RecordCodec } from "./_raw.ts";
import { SHN, SHT } from "./defs.ts";
import { EHDR_FIELD, type ElfHeader } from "./header.ts";
import { type SectionIndex, sectionIndex } from "./indices.ts";
import { StringTable } from "./string-table.ts";

/** One section header, widened; `data()` is a view on the file's bytes. */
export interface Section {
  index: SectionIndex;
  name: string;
  /** `SHT` */
  type: number;
  /** `SHF` bits */
  flags: bigint;
  addr: bigint;
  offset: number;
  size: number;
  link: number;
  info: number;
  addralign: bigint;
  entsize: number;
  /** File offset of this section's header, for error messages. */
  headerOffset: number;
  /** The section's bytes (a subarray view); empty for `SHT_NOBITS`. */
  data(): Uint8Array;
}

class SectionImpl implements Section {
  name = "";
  constructor(
    readonly bytes: Uint8Array,
    readonly index: SectionIndex,
    readonly headerOffset: number,
    readonly type: number,
    readonly flags: bigint,
    readonly addr: bigint,
    readonly offset: number,
    readonly size: number,
    readonly link: number,
    readonly info: number,
    readonly addralign: bigint,
    readonly entsize: number,
  ) {}

  data(): Uint8Array {
    if (this.type === SHT.NOBITS || this.type === SHT.NULL) return this.bytes.subarray(0, 0);
    return this.bytes.subarray(this.offset, this.offset + this.size);
  }

  // Keep the file's bytes out of console.log / JSON output.
  toJSON(): object {
    const { bytes: _b, ...rest } = this;
    return rest;
  }
}

/** Field offsets inside `Elf64_Shdr`, for error messages. */
export const SHDR_FIELD = {
  name: 0,
  type: 4,
  offset: 24,
  size: 32,
  link: 40,
  info: 44,
  entsize: 56,
} as const;

/**
 * Read and check every section header. No sections (`e_shnum` 0, `e_shoff` 0)
 * gives `[]`; extended numbering (`e_shnum` 0 with a table, or `e_shstrndx`
 * SHN_XINDEX) is EOPNOTSUPP, as SPEC §2 limits sections to 65,535.
 */
export function parseSections(
  bytes: Uint8Array,
  dv: DataView,
  header: ElfHeader,
  codec: RecordCodec,
): { sections: Section[]; shstrtab: StringTable | undefined } {
  const { shoff, shnum, shentsize, shstrndx } = header;
  if (shnum === 0) {
    if (shoff !== 0) {
      throw elfError(
        "EOPNOTSUPP",
        EHDR_FIELD.shnum,
        "e_shnum 0 with a section table (extended numbering)",
        shoff,
      );
    }
    return { sections: [], shstrtab: undefined };
  }
  if (shentsize < codec.size.shdr) {
    throw elfError("EINVAL", EHDR_FIELD.shentsize, "e_shentsize smaller than Elf64_Shdr", shentsize);
  }
  if (shoff === 0 || !inBounds(shoff, shnum * shentsize, bytes.length)) {
    throw elfError(
      "EINVAL",
      EHDR_FIELD.shoff,
      `section table (${shnum} x ${shentsize} bytes) outside the file`,
      shoff,
    );
  }
  if (shstrndx === SHN.XINDEX) {
    throw elfError(
      "EOPNOTSUPP",
      EHDR_FIELD.shstrndx,
      "e_shstrndx is SHN_XINDEX (extended numbering)",
      shstrndx,
    );
  }
  if (shstrndx === SHN.UNDEF || shstrndx >= shnum) {
    throw elfError("EINVAL", EHDR_FIELD.shstrndx, "e_shstrndx out of range", shstrndx);
  }

  const sections: SectionImpl[] = new Array(shnum);
  const nameOffsets: number[] = new Array(shnum);
  for (let i = 0; i < shnum; i++) {
    const at = shoff + i * shentsize;
    const raw = codec.readShdr(dv, at);
    const where = { index: i, name: "" };
    const offset = toSafe(raw.offset, at + SHDR_FIELD.offset, `section [${i}] sh_offset`);
    const size = toSafe(raw.size, at + SHDR_FIELD.size, `section [${i}] sh_size`);
    const entsize = toSafe(raw.entsize, at + SHDR_FIELD.entsize, `section [${i}] sh_entsize`);
    if (raw.type !== SHT.NOBITS && raw.type !== SHT.NULL && !inBounds(offset, size, bytes.length)) {
      throw sectionError(
        "EINVAL",
        at + SHDR_FIELD.offset,
        where,
        `data (0x${size.toString(16)} bytes) outside the file`,
        offset,
      );
    }
    nameOffsets[i] = raw.name;
    sections[i] = new SectionImpl(
      bytes,
      sectionIndex(i),
      at,
      raw.type,
      raw.flags,
      raw.addr,
      offset,
      size,
      raw.link,
      raw.info,
      raw.addralign,
      entsize,
    );
  }

  const strSec = sections[shstrndx]!;
  if (strSec.type !== SHT.STRTAB) {
    throw elfError("EINVAL", EHDR_FIELD.shstrndx, "e_shstrndx does not name a SHT_STRTAB section", shstrndx);
  }
  const shstrtab = new StringTable(strSec.data(), strSec.offset, { index: shstrndx, name: "" });
  for (let i = 0; i < shnum; i++) {
    const s = sections[i]!;
    s.name = shstrtab.get(nameOffsets[i]!, `section [${i}] sh_name`, s.headerOffset + SHDR_FIELD.name);
  }
  return { sections, shstrtab };
}
