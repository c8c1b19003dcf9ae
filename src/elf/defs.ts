/**
 * The ELF format's constants and raw record sizes: xsplice's `<elf.h>`.
 * Constants only, no behaviour beyond {@link nameOf} and {@link flagNames}.
 * Values come from the System V gABI, the GNU extensions, and the x86-64 and
 * AArch64 psABIs. Keys are spelled as `readelf` prints them (without the
 * family prefix), so `nameOf(SHT, 1)` is `"PROGBITS"`.
 */

/** Sizes in bytes of the ELF64 on-disk records. */
export const ELF64_SIZE = {
  /** `Elf64_Ehdr` */
  header: 64,
  /** `Elf64_Shdr` */
  shdr: 64,
  /** `Elf64_Sym` */
  sym: 24,
  /** `Elf64_Rela` */
  rela: 24,
  /** `Elf64_Rel` */
  rel: 16,
  /** `Elf64_Phdr` */
  phdr: 56,
  /** `Elf64_Nhdr` (namesz, descsz, type) */
  nhdr: 12,
} as const;

/** `e_ident` indices and values (gABI "ELF Identification"). */
export const EI = {
  MAG0: 0,
  CLASS: 4,
  DATA: 5,
  VERSION: 6,
  OSABI: 7,
  ABIVERSION: 8,
  NIDENT: 16,
} as const;

/** `e_ident[EI_CLASS]` values. */
export const ELFCLASS = { NONE: 0, "32": 1, "64": 2 } as const;

/** `e_ident[EI_DATA]` values. */
export const ELFDATA = { NONE: 0, "2LSB": 1, "2MSB": 2 } as const;

/** `e_version` / `e_ident[EI_VERSION]`: the only version there is. */
export const EV_CURRENT = 1;

/** The four magic bytes at offset 0. */
export const ELFMAG = Uint8Array.of(0x7f, 0x45, 0x4c, 0x46);

/** `e_ident[EI_OSABI]` values. */
export const ELFOSABI = {
  NONE: 0,
  HPUX: 1,
  NETBSD: 2,
  GNU: 3,
  SOLARIS: 6,
  AIX: 7,
  IRIX: 8,
  FREEBSD: 9,
  TRU64: 10,
  MODESTO: 11,
  OPENBSD: 12,
  ARM_AEABI: 64,
  ARM: 97,
  STANDALONE: 255,
} as const;

/** `e_type` values. */
export const ET = {
  NONE: 0,
  REL: 1,
  EXEC: 2,
  DYN: 3,
  CORE: 4,
  LOOS: 0xfe00,
  HIOS: 0xfeff,
  LOPROC: 0xff00,
  HIPROC: 0xffff,
} as const;

/** `e_machine` values (the ones xsplice may meet; others print as numbers). */
export const EM = {
  NONE: 0,
  SPARC: 2,
  "386": 3,
  MIPS: 8,
  PPC: 20,
  PPC64: 21,
  S390: 22,
  ARM: 40,
  IA_64: 50,
  X86_64: 62,
  AARCH64: 183,
  RISCV: 243,
  BPF: 247,
  LOONGARCH: 258,
} as const;

/** Special section indices (`st_shndx`, `e_shstrndx`). */
export const SHN = {
  UNDEF: 0,
  LORESERVE: 0xff00,
  LOPROC: 0xff00,
  /** x86-64 psABI: large-model common symbol. */
  X86_64_LCOMMON: 0xff02,
  HIPROC: 0xff1f,
  LOOS: 0xff20,
  HIOS: 0xff3f,
  ABS: 0xfff1,
  COMMON: 0xfff2,
  /** The real index is elsewhere (extended numbering); xsplice does not support it (SPEC §2). */
  XINDEX: 0xffff,
  HIRESERVE: 0xffff,
} as const;

/** `sh_type` values. */
export const SHT = {
  NULL: 0,
  PROGBITS: 1,
  SYMTAB: 2,
  STRTAB: 3,
  RELA: 4,
  HASH: 5,
  DYNAMIC: 6,
  NOTE: 7,
  NOBITS: 8,
  REL: 9,
  SHLIB: 10,
  DYNSYM: 11,
  INIT_ARRAY: 14,
  FINI_ARRAY: 15,
  PREINIT_ARRAY: 16,
  GROUP: 17,
  SYMTAB_SHNDX: 18,
  RELR: 19,
  LOOS: 0x60000000,
  LLVM_ADDRSIG: 0x6fff4c03,
  GNU_ATTRIBUTES: 0x6ffffff5,
  GNU_HASH: 0x6ffffff6,
  GNU_LIBLIST: 0x6ffffff7,
  CHECKSUM: 0x6ffffff8,
  VERDEF: 0x6ffffffd,
  VERNEED: 0x6ffffffe,
  VERSYM: 0x6fffffff,
  HIOS: 0x6fffffff,
  LOPROC: 0x70000000,
  /** x86-64 psABI: `.eh_frame` in objects made by gas. */
  X86_64_UNWIND: 0x70000001,
  AARCH64_ATTRIBUTES: 0x70000003,
  HIPROC: 0x7fffffff,
  LOUSER: 0x80000000,
  HIUSER: 0xffffffff,
} as const;

/** `sh_flags` bits (bigint, like `Section.flags`). */
export const SHF = {
  WRITE: 0x1n,
  ALLOC: 0x2n,
  EXECINSTR: 0x4n,
  MERGE: 0x10n,
  STRINGS: 0x20n,
  INFO_LINK: 0x40n,
  LINK_ORDER: 0x80n,
  OS_NONCONFORMING: 0x100n,
  GROUP: 0x200n,
  TLS: 0x400n,
  COMPRESSED: 0x800n,
  GNU_RETAIN: 0x200000n,
  /** x86-64 psABI: section in the large model. */
  X86_64_LARGE: 0x10000000n,
  EXCLUDE: 0x80000000n,
} as const;

/** `ELF64_ST_TYPE(st_info)` values. */
export const STT = {
  NOTYPE: 0,
  OBJECT: 1,
  FUNC: 2,
  SECTION: 3,
  FILE: 4,
  COMMON: 5,
  TLS: 6,
  /** GNU indirect function (readelf prints it as IFUNC). */
  GNU_IFUNC: 10,
  LOOS: 10,
  HIOS: 12,
  LOPROC: 13,
  HIPROC: 15,
} as const;

/** `ELF64_ST_BIND(st_info)` values. */
export const STB = {
  LOCAL: 0,
  GLOBAL: 1,
  WEAK: 2,
  GNU_UNIQUE: 10,
  LOOS: 10,
  HIOS: 12,
  LOPROC: 13,
  HIPROC: 15,
} as const;

/** `ELF64_ST_VISIBILITY(st_other)` values. */
export const STV = {
  DEFAULT: 0,
  INTERNAL: 1,
  HIDDEN: 2,
  PROTECTED: 3,
} as const;

/** `p_type` values. */
export const PT = {
  NULL: 0,
  LOAD: 1,
  DYNAMIC: 2,
  INTERP: 3,
  NOTE: 4,
  SHLIB: 5,
  PHDR: 6,
  TLS: 7,
  LOOS: 0x60000000,
  GNU_EH_FRAME: 0x6474e550,
  GNU_STACK: 0x6474e551,
  GNU_RELRO: 0x6474e552,
  GNU_PROPERTY: 0x6474e553,
  HIOS: 0x6fffffff,
  LOPROC: 0x70000000,
  HIPROC: 0x7fffffff,
} as const;

/** `p_flags` bits. */
export const PF = {
  X: 0x1,
  W: 0x2,
  R: 0x4,
} as const;

/** Note types for owner `GNU` (plus the core/gABI ones xsplice may print). */
export const NT = {
  GNU_ABI_TAG: 1,
  GNU_HWCAP: 2,
  /** The build-id: SPEC §1 `.xsplice.target`, `.xsplice.depends`, `.note.gnu.build-id`. */
  GNU_BUILD_ID: 3,
  GNU_GOLD_VERSION: 4,
  GNU_PROPERTY_TYPE_0: 5,
} as const;

/** x86-64 psABI relocation types (`ELF64_R_TYPE(r_info)`), printed with prefix `R_X86_64_`. */
export const R_X86_64 = {
  NONE: 0,
  "64": 1,
  PC32: 2,
  GOT32: 3,
  PLT32: 4,
  COPY: 5,
  GLOB_DAT: 6,
  JUMP_SLOT: 7,
  RELATIVE: 8,
  GOTPCREL: 9,
  "32": 10,
  "32S": 11,
  "16": 12,
  PC16: 13,
  "8": 14,
  PC8: 15,
  DTPMOD64: 16,
  DTPOFF64: 17,
  TPOFF64: 18,
  TLSGD: 19,
  TLSLD: 20,
  DTPOFF32: 21,
  GOTTPOFF: 22,
  TPOFF32: 23,
  PC64: 24,
  GOTOFF64: 25,
  GOTPC32: 26,
  GOT64: 27,
  GOTPCREL64: 28,
  GOTPC64: 29,
  GOTPLT64: 30,
  PLTOFF64: 31,
  SIZE32: 32,
  SIZE64: 33,
  GOTPC32_TLSDESC: 34,
  TLSDESC_CALL: 35,
  TLSDESC: 36,
  IRELATIVE: 37,
  RELATIVE64: 38,
  GOTPCRELX: 41,
  REX_GOTPCRELX: 42,
} as const;

/** AArch64 psABI relocation types, printed with prefix `R_AARCH64_`. */
export const R_AARCH64 = {
  NONE: 0,
  ABS64: 257,
  ABS32: 258,
  ABS16: 259,
  PREL64: 260,
  PREL32: 261,
  PREL16: 262,
  MOVW_UABS_G0: 263,
  MOVW_UABS_G0_NC: 264,
  MOVW_UABS_G1: 265,
  MOVW_UABS_G1_NC: 266,
  MOVW_UABS_G2: 267,
  MOVW_UABS_G2_NC: 268,
  MOVW_UABS_G3: 269,
  MOVW_SABS_G0: 270,
  MOVW_SABS_G1: 271,
  MOVW_SABS_G2: 272,
  LD_PREL_LO19: 273,
  ADR_PREL_LO21: 274,
  ADR_PREL_PG_HI21: 275,
  ADR_PREL_PG_HI21_NC: 276,
  ADD_ABS_LO12_NC: 277,
  LDST8_ABS_LO12_NC: 278,
  TSTBR14: 279,
  CONDBR19: 280,
  JUMP26: 282,
  CALL26: 283,
  LDST16_ABS_LO12_NC: 284,
  LDST32_ABS_LO12_NC: 285,
  LDST64_ABS_LO12_NC: 286,
  MOVW_PREL_G0: 287,
  MOVW_PREL_G0_NC: 288,
  MOVW_PREL_G1: 289,
  MOVW_PREL_G1_NC: 290,
  MOVW_PREL_G2: 291,
  MOVW_PREL_G2_NC: 292,
  MOVW_PREL_G3: 293,
  LDST128_ABS_LO12_NC: 299,
  ADR_GOT_PAGE: 311,
  LD64_GOT_LO12_NC: 312,
  LD64_GOTPAGE_LO15: 313,
  TLSGD_ADR_PAGE21: 513,
  TLSGD_ADD_LO12_NC: 514,
  TLSIE_ADR_GOTTPREL_PAGE21: 541,
  TLSIE_LD64_GOTTPREL_LO12_NC: 542,
  TLSLE_ADD_TPREL_HI12: 549,
  TLSLE_ADD_TPREL_LO12_NC: 551,
  TLSDESC_ADR_PAGE21: 562,
  TLSDESC_LD64_LO12: 563,
  TLSDESC_ADD_LO12: 564,
  TLSDESC_CALL: 569,
  COPY: 1024,
  GLOB_DAT: 1025,
  JUMP_SLOT: 1026,
  RELATIVE: 1027,
  TLS_DTPMOD64: 1028,
  TLS_DTPREL64: 1029,
  TLS_TPREL64: 1030,
  TLSDESC: 1031,
  IRELATIVE: 1032,
} as const;

/** A constant family: name → value. */
export type ConstTable = Readonly<Record<string, number | bigint>>;

/**
 * The name of `value` in `table`; never throws. The first key declared for a
 * value wins. A value inside a `LOxx`..`HIxx` range without its own name prints
 * as the range start plus an offset (`LOOS+0x5`, as Go's `debug/elf` does);
 * anything else prints as its decimal number.
 */
export function nameOf(table: ConstTable, value: number | bigint): string {
  const v = BigInt(value);
  let best: { name: string; base: bigint } | undefined;
  for (const [name, raw] of Object.entries(table)) {
    const k = BigInt(raw);
    if (k === v) return name;
    if (name.startsWith("LO") && k < v) {
      const hi = table[`HI${name.slice(2)}`];
      if (hi !== undefined && v <= BigInt(hi) && (best === undefined || k > best.base))
        best = { name, base: k };
    }
  }
  return best ? `${best.name}+0x${(v - best.base).toString(16)}` : v.toString(10);
}

/**
 * The names of the bits set in `value`, in table order, with any unnamed
 * remainder as a hex number: `["ALLOC", "EXECINSTR"]`, `["WRITE", "0x100000"]`.
 */
export function flagNames(table: ConstTable, value: number | bigint): string[] {
  let rest = BigInt(value);
  const out: string[] = [];
  for (const [name, raw] of Object.entries(table)) {
    const bit = BigInt(raw);
    if (bit !== 0n && (rest & bit) === bit) {
      out.push(name);
      rest &= ~bit;
    }
  }
  if (rest !== 0n) out.push(`0x${rest.toString(16)}`);
  return out;
}
