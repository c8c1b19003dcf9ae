/**
 * Relocation sections (`SHT_RELA`; SPEC §1 allows RELA only, so `SHT_REL` is
 * left to the payload reader to refuse). A section is checked as a whole
 * (`sh_link` to a symbol table, `sh_info` in range, entry size) and each
 * entry's symbol index is checked against the linked table's size.
 */
import { sectionError } from "./_check.ts";
import { SHT } from "./defs.ts";
import { type SectionIndex, type SymbolIndex, sectionIndex, symbolIndex } from "./indices.ts";
import { type Section, SHDR_FIELD } from "./section.ts";
import { type SymbolContext, symbolCount } from "./symbol.ts";

/** One `Elf64_Rela`; `symbol` indexes the symbol table named by its section's `symtab`. */
export interface Rela {
  offset: bigint;
  /** `R_X86_64` / `R_AARCH64`, by the file's machine */
  type: number;
  symbol: SymbolIndex;
  addend: bigint;
}

/** A parsed `SHT_RELA` section. */
export interface RelaSection {
  section: Section;
  /** The section the relocations apply to (`sh_info`); 0 for dynamic relocations. */
  target: SectionIndex;
  /** The symbol table they refer to (`sh_link`); 0 when there is none. */
  symtab: SectionIndex;
  relocations: Rela[];
}

/**
 * Parse one `SHT_RELA` section. Bad `sh_entsize`/`sh_size`, `sh_link` not a
 * symbol table (0 is allowed when no entry names a symbol, as in static
 * executables' IRELATIVE tables), `sh_info` out of range, or a symbol index
 * past the table: EINVAL.
 */
export function parseRelaSection(ctx: SymbolContext, section: Section): RelaSection {
  const size = ctx.codec.size.rela;
  const h = section.headerOffset;
  if (section.type !== SHT.RELA) {
    throw sectionError("EINVAL", h + SHDR_FIELD.type, section, "not a SHT_RELA section", section.type);
  }
  if (section.entsize !== size) {
    throw sectionError("EINVAL", h + SHDR_FIELD.entsize, section, "sh_entsize is not 24", section.entsize);
  }
  if (section.size % size !== 0) {
    throw sectionError("EINVAL", h + SHDR_FIELD.size, section, "sh_size not a multiple of 24", section.size);
  }
  if (section.info >= ctx.sections.length) {
    throw sectionError(
      "EINVAL",
      h + SHDR_FIELD.info,
      section,
      "sh_info (target section) out of range",
      section.info,
    );
  }
  let nsyms = 1; // with no symbol table, only symbol 0 ("none") may be named
  if (section.link !== 0) {
    const symtab = ctx.sections[section.link];
    if (symtab === undefined || (symtab.type !== SHT.SYMTAB && symtab.type !== SHT.DYNSYM)) {
      throw sectionError(
        "EINVAL",
        h + SHDR_FIELD.link,
        section,
        "sh_link is not a symbol table",
        section.link,
      );
    }
    nsyms = symbolCount(ctx, symtab);
  }
  const count = section.size / size;
  const relocations: Rela[] = new Array(count);
  const dv = ctx.dv;
  // Read in place rather than through the codec's record: a big payload has tens of thousands
  // of entries, and the intermediate object per entry was a third of this loop. The file is
  // ELF64 little-endian (readElf checked), the codec's only layout.
  for (let i = 0; i < count; i++) {
    const at = section.offset + i * size;
    const sym = dv.getUint32(at + 12, true); // r_info = sym << 32 | type
    if (sym >= nsyms) {
      throw sectionError("EINVAL", at + 8, section, `relocation ${i} symbol index out of range`, sym);
    }
    relocations[i] = {
      offset: dv.getBigUint64(at, true),
      type: dv.getUint32(at + 8, true),
      symbol: symbolIndex(sym),
      addend: dv.getBigInt64(at + 16, true),
    };
  }
  return { section, target: sectionIndex(section.info), symtab: sectionIndex(section.link), relocations };
}
