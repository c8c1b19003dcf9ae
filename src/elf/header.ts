/**
 * The ELF file header: identification, then the fields that locate the
 * program and section header tables. Every check here is SPEC §2 "ELF header"
 * except type/machine/OS-ABI/program headers, which the payload reader checks
 * (an executable or shared library is a valid ELF file for the reader).
 */
import { elfError } from "../errors.ts";
import { toSafe } from "./_check.ts";
import { codecFor, type RecordCodec } from "./_raw.ts";
import { EI, ELF64_SIZE, ELFMAG, EV_CURRENT } from "./defs.ts";

/** The file header, widened to friendly types; offsets are numbers, the entry point a bigint. */
export interface ElfHeader {
  class: 64;
  data: "lsb";
  osabi: number;
  abiVersion: number;
  /** `ET` */
  type: number;
  /** `EM` */
  machine: number;
  version: number;
  entry: bigint;
  phoff: number;
  shoff: number;
  flags: number;
  ehsize: number;
  phentsize: number;
  phnum: number;
  shentsize: number;
  shnum: number;
  shstrndx: number;
}

/** Field offsets inside `Elf64_Ehdr`, for error messages. */
export const EHDR_FIELD = {
  phoff: 32,
  shoff: 40,
  phentsize: 54,
  phnum: 56,
  shentsize: 58,
  shnum: 60,
  shstrndx: 62,
} as const;

/**
 * Parse and check the file header. Short file or bad magic → EINVAL; class,
 * byte order or version other than ELF64 LSB v1 → EOPNOTSUPP (SPEC §2).
 */
export function parseHeader(bytes: Uint8Array, dv: DataView): { header: ElfHeader; codec: RecordCodec } {
  if (bytes.length < EI.NIDENT) throw elfError("EINVAL", 0, "file shorter than e_ident", bytes.length);
  for (let i = 0; i < ELFMAG.length; i++) {
    if (bytes[i] !== ELFMAG[i]) throw elfError("EINVAL", i, "bad ELF magic in e_ident", bytes[i] ?? 0);
  }
  const cls = bytes[EI.CLASS] ?? 0;
  const data = bytes[EI.DATA] ?? 0;
  const codec = codecFor(cls, data);
  if (cls !== 2) throw elfError("EOPNOTSUPP", EI.CLASS, "e_ident[EI_CLASS] is not ELFCLASS64", cls);
  if (!codec) throw elfError("EOPNOTSUPP", EI.DATA, "e_ident[EI_DATA] is not ELFDATA2LSB", data);
  const identVersion = bytes[EI.VERSION] ?? 0;
  if (identVersion !== EV_CURRENT) {
    throw elfError("EOPNOTSUPP", EI.VERSION, "e_ident[EI_VERSION] is not EV_CURRENT", identVersion);
  }
  if (bytes.length < ELF64_SIZE.header) {
    throw elfError("EINVAL", 0, "file shorter than the ELF64 header", bytes.length);
  }
  const raw = codec.readHeader(dv, 0);
  if (raw.version !== EV_CURRENT)
    throw elfError("EOPNOTSUPP", 20, "e_version is not EV_CURRENT", raw.version);
  const header: ElfHeader = {
    class: 64,
    data: "lsb",
    osabi: bytes[EI.OSABI] ?? 0,
    abiVersion: bytes[EI.ABIVERSION] ?? 0,
    type: raw.type,
    machine: raw.machine,
    version: raw.version,
    entry: raw.entry,
    phoff: toSafe(raw.phoff, EHDR_FIELD.phoff, "e_phoff"),
    shoff: toSafe(raw.shoff, EHDR_FIELD.shoff, "e_shoff"),
    flags: raw.flags,
    ehsize: raw.ehsize,
    phentsize: raw.phentsize,
    phnum: raw.phnum,
    shentsize: raw.shentsize,
    shnum: raw.shnum,
    shstrndx: raw.shstrndx,
  };
  return { header, codec };
}
