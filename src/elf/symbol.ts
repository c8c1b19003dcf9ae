/**
 * Symbol tables (`SHT_SYMTAB`, `SHT_DYNSYM`). The table is checked as a whole
 * (`sh_link` to a string table, `sh_entsize`, size a multiple of it) before any
 * entry is read; each entry's name and `st_shndx` are checked as it is read.
 * `SHN_*` numbers become the {@link SymbolSection} union.
 */
import { inBounds, sectionError } from "./_check.ts";
import type { RecordCodec } from "./_raw.ts";
import { EM, SHN, SHT } from "./defs.ts";
import { type SectionIndex, type SymbolIndex, sectionIndex, symbolIndex } from "./indices.ts";
import { type Section, SHDR_FIELD } from "./section.ts";
import { StringTable } from "./string-table.ts";

/** Where a symbol is defined: `SHN_UNDEF`, `SHN_ABS`, `SHN_COMMON`, or a real section. */
export type SymbolSection =
  | { kind: "undefined" }
  | { kind: "absolute" }
  | { kind: "common" }
  | { kind: "section"; index: SectionIndex };

/** One symbol, widened. `index` is its position in its table (0 is the null symbol). */
export interface ElfSymbol {
  index: SymbolIndex;
  name: string;
  value: bigint;
  size: bigint;
  /** `STT` */
  type: number;
  /** `STB` */
  bind: number;
  /** `STV` */
  visibility: number;
  section: SymbolSection;
  /** The raw `st_shndx`, for printing and for checks the union hides. */
  shndx: number;
}

const UNDEFINED: SymbolSection = Object.freeze({ kind: "undefined" });
const ABSOLUTE: SymbolSection = Object.freeze({ kind: "absolute" });
const COMMON: SymbolSection = Object.freeze({ kind: "common" });

/** What a reader needs to know about the file to read a symbol table. */
export interface SymbolContext {
  bytes: Uint8Array;
  dv: DataView;
  codec: RecordCodec;
  sections: readonly Section[];
  machine: number;
  /** Cached string table of a section (checked on first use). */
  stringTable(section: Section): StringTable;
}

/**
 * Check a symbol table's header fields and return its entry count: `sh_link`
 * must name a `SHT_STRTAB`, `sh_entsize` must be the record size and `sh_size`
 * a multiple of it (EINVAL otherwise).
 */
export function symbolCount(ctx: SymbolContext, table: Section): number {
  const symSize = ctx.codec.size.sym;
  if (table.type !== SHT.SYMTAB && table.type !== SHT.DYNSYM) {
    throw sectionError(
      "EINVAL",
      table.headerOffset + SHDR_FIELD.type,
      table,
      "not a symbol table",
      table.type,
    );
  }
  if (table.entsize !== symSize) {
    throw sectionError(
      "EINVAL",
      table.headerOffset + SHDR_FIELD.entsize,
      table,
      "sh_entsize is not 24",
      table.entsize,
    );
  }
  if (table.size % symSize !== 0) {
    throw sectionError(
      "EINVAL",
      table.headerOffset + SHDR_FIELD.size,
      table,
      "sh_size not a multiple of 24",
      table.size,
    );
  }
  const link = ctx.sections[table.link];
  if (table.link === 0 || link === undefined || link.type !== SHT.STRTAB) {
    throw sectionError(
      "EINVAL",
      table.headerOffset + SHDR_FIELD.link,
      table,
      "sh_link is not a string table",
      table.link,
    );
  }
  // parseSections checked that the data lies in the file; re-check so this holds on its own.
  if (!inBounds(table.offset, table.size, ctx.bytes.length)) {
    throw sectionError(
      "EINVAL",
      table.headerOffset + SHDR_FIELD.offset,
      table,
      "data outside the file",
      table.offset,
    );
  }
  return table.size / symSize;
}

/**
 * Parse every entry of a symbol table, null symbol included, so that
 * `symbols[rela.symbol]` is the symbol a relocation names.
 */
export function parseSymbols(ctx: SymbolContext, table: Section): ElfSymbol[] {
  const count = symbolCount(ctx, table);
  const strtab = ctx.stringTable(ctx.sections[table.link]!);
  const shnum = ctx.sections.length;
  const symSize = ctx.codec.size.sym;
  // One SymbolSection object per section index, shared by all its symbols.
  const inSection: SymbolSection[] = [];
  const out: ElfSymbol[] = new Array(count);
  for (let i = 0; i < count; i++) {
    const at = table.offset + i * symSize;
    const raw = ctx.codec.readSym(ctx.dv, at);
    // The label names the entry only in the out-of-bounds error: not built for the others.
    const name =
      raw.name === 0
        ? ""
        : strtab.get(raw.name, raw.name < strtab.size ? "st_name" : `symbol ${i} st_name`, at);
    let section: SymbolSection;
    const shndx = raw.shndx;
    if (shndx === SHN.UNDEF) section = UNDEFINED;
    else if (shndx === SHN.ABS) section = ABSOLUTE;
    else if (shndx === SHN.COMMON) section = COMMON;
    else if (shndx === SHN.X86_64_LCOMMON && ctx.machine === EM.X86_64) section = COMMON;
    else if (shndx === SHN.XINDEX) {
      throw sectionError("EOPNOTSUPP", at + 6, table, `symbol ${i} st_shndx is SHN_XINDEX`, shndx);
    } else if (shndx >= shnum) {
      throw sectionError("EINVAL", at + 6, table, `symbol ${i} st_shndx out of range`, shndx);
    } else {
      let s = inSection[shndx];
      if (s === undefined) {
        s = Object.freeze({ kind: "section", index: sectionIndex(shndx) }) as SymbolSection;
        inSection[shndx] = s;
      }
      section = s;
    }
    out[i] = {
      index: symbolIndex(i),
      name,
      value: raw.value,
      size: raw.size,
      type: raw.info & 0xf,
      bind: raw.info >> 4,
      visibility: raw.other & 0x3,
      section,
      shndx,
    };
  }
  return out;
}

/** Build the string table for a section, checking it is one. */
export function makeStringTable(section: Section): StringTable {
  if (section.type !== SHT.STRTAB) {
    throw sectionError(
      "EINVAL",
      section.headerOffset + SHDR_FIELD.type,
      section,
      "not a string table",
      section.type,
    );
  }
  return new StringTable(section.data(), section.offset, section);
}
