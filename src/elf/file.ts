/**
 * `readElf`: an ELF64 little-endian file as a zero-copy view. The header and
 * the section table are checked when the file is opened; symbols,
 * relocations and notes are parsed on first use and cached, because callers
 * reading a 10 MB library usually need only part of it.
 */
import { elfError } from "../errors.ts";
import { NT, PT, SHF, SHT } from "./defs.ts";
import { type ElfHeader, parseHeader } from "./header.ts";
import { type ElfNote, noteAlign, parseNotes } from "./note.ts";
import { parseRelaSection, type RelaSection } from "./relocation.ts";
import { parseSections, type Section } from "./section.ts";
import { type ProgramHeader, parseProgramHeaders, segmentData } from "./segment.ts";
import type { StringTable } from "./string-table.ts";
import { type ElfSymbol, makeStringTable, parseSymbols, type SymbolContext, symbolCount } from "./symbol.ts";

/** An opened ELF file. Every method throws only `XspliceError`. */
export interface ElfFile {
  bytes: Uint8Array;
  header: ElfHeader;
  sections: Section[];
  programHeaders: ProgramHeader[];
  /** Section by index; EINVAL naming the index when out of range. */
  section(index: number): Section;
  /** First section with this name. */
  sectionByName(name: string): Section | undefined;
  /** Every section of a type, in index order (e.g. to find duplicate symbol tables). */
  sectionsByType(type: number): Section[];
  /** The `SHT_SYMTAB` symbols (null symbol at index 0); `[]` when absent (see `symbolTable()`). */
  symbols(): ElfSymbol[];
  /** The first `SHT_SYMTAB` section, if any. */
  symbolTable(): Section | undefined;
  /** The `SHT_DYNSYM` symbols; `[]` when absent. */
  dynamicSymbols(): ElfSymbol[];
  /** The symbols of any symbol table section (cached per section). */
  symbolsOf(table: Section): ElfSymbol[];
  /** Number of entries of a symbol table, checked but without parsing them. */
  symbolCountOf(table: Section): number;
  /** The checked, cached string table in a `SHT_STRTAB` section. */
  stringTable(section: Section): StringTable;
  /** Every `SHT_RELA` section, parsed, in index order. */
  relocationSections(): RelaSection[];
  /** The notes of a `SHT_NOTE` section. */
  notes(section: Section): ElfNote[];
  /** The notes of a `PT_NOTE` segment. */
  segmentNotes(ph: ProgramHeader): ElfNote[];
  /**
   * The GNU build-id (`NT_GNU_BUILD_ID`): from `.note.gnu.build-id`, else from
   * any other allocated note section, else from a `PT_NOTE` segment. Payload
   * notes `.xsplice.target`/`.xsplice.depends` have the same shape but are not
   * allocated, so they are never taken for the file's own id.
   */
  buildId(): Uint8Array | undefined;
}

class ElfFileImpl implements ElfFile, SymbolContext {
  readonly dv: DataView;
  readonly header: ElfHeader;
  readonly codec;
  readonly sections: Section[];
  readonly programHeaders: ProgramHeader[];
  readonly #strtabs = new Map<number, StringTable>();
  readonly #symbols = new Map<number, ElfSymbol[]>();
  #relas: RelaSection[] | undefined;
  #byName: Map<string, Section> | undefined;

  constructor(readonly bytes: Uint8Array) {
    this.dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const { header, codec } = parseHeader(bytes, this.dv);
    this.header = header;
    this.codec = codec;
    const { sections, shstrtab } = parseSections(bytes, this.dv, header, codec);
    this.sections = sections;
    if (shstrtab) this.#strtabs.set(header.shstrndx, shstrtab);
    this.programHeaders = parseProgramHeaders(bytes, this.dv, header, codec);
  }

  get machine(): number {
    return this.header.machine;
  }

  section(index: number): Section {
    const s = Number.isInteger(index) ? this.sections[index] : undefined;
    if (s === undefined) {
      throw elfError(
        "EINVAL",
        this.header.shoff,
        `section index ${index} out of range (${this.sections.length} sections)`,
      );
    }
    return s;
  }

  sectionByName(name: string): Section | undefined {
    if (!this.#byName) {
      this.#byName = new Map();
      for (const s of this.sections) if (!this.#byName.has(s.name)) this.#byName.set(s.name, s);
    }
    return this.#byName.get(name);
  }

  sectionsByType(type: number): Section[] {
    return this.sections.filter((s) => s.type === type);
  }

  stringTable(section: Section): StringTable {
    let t = this.#strtabs.get(section.index);
    if (!t) {
      t = makeStringTable(section);
      this.#strtabs.set(section.index, t);
    }
    return t;
  }

  symbolTable(): Section | undefined {
    return this.sections.find((s) => s.type === SHT.SYMTAB);
  }

  symbolsOf(table: Section): ElfSymbol[] {
    let syms = this.#symbols.get(table.index);
    if (!syms) {
      syms = parseSymbols(this, table);
      this.#symbols.set(table.index, syms);
    }
    return syms;
  }

  symbolCountOf(table: Section): number {
    return symbolCount(this, table);
  }

  symbols(): ElfSymbol[] {
    const t = this.symbolTable();
    return t ? this.symbolsOf(t) : [];
  }

  dynamicSymbols(): ElfSymbol[] {
    const t = this.sections.find((s) => s.type === SHT.DYNSYM);
    return t ? this.symbolsOf(t) : [];
  }

  relocationSections(): RelaSection[] {
    if (!this.#relas) {
      this.#relas = this.sections.filter((s) => s.type === SHT.RELA).map((s) => parseRelaSection(this, s));
    }
    return this.#relas;
  }

  notes(section: Section): ElfNote[] {
    if (section.type !== SHT.NOTE) {
      throw elfError(
        "EINVAL",
        section.headerOffset + 4,
        `section ${section.name} is not SHT_NOTE`,
        section.type,
      );
    }
    return parseNotes(this.bytes, section.offset, section.size, noteAlign(section.addralign), section.name);
  }

  segmentNotes(ph: ProgramHeader): ElfNote[] {
    if (ph.type !== PT.NOTE)
      throw elfError("EINVAL", ph.headerOffset, "program header is not PT_NOTE", ph.type);
    const data = segmentData(this.bytes, ph);
    return parseNotes(
      this.bytes,
      data.byteOffset - this.bytes.byteOffset,
      data.length,
      noteAlign(ph.align),
      "PT_NOTE",
    );
  }

  buildId(): Uint8Array | undefined {
    const pick = (notes: ElfNote[]) =>
      notes.find((n) => n.name === "GNU" && n.type === NT.GNU_BUILD_ID)?.desc;
    const named = this.sectionByName(".note.gnu.build-id");
    if (named && named.type === SHT.NOTE) {
      const id = pick(this.notes(named));
      if (id) return id;
    }
    for (const s of this.sections) {
      if (s !== named && s.type === SHT.NOTE && (s.flags & SHF.ALLOC) !== 0n) {
        const id = pick(this.notes(s));
        if (id) return id;
      }
    }
    for (const ph of this.programHeaders) {
      if (ph.type === PT.NOTE) {
        const id = pick(this.segmentNotes(ph));
        if (id) return id;
      }
    }
    return undefined;
  }
}

/**
 * Open an ELF64 little-endian file held in `bytes` (not copied; do not mutate
 * it while the result is in use). Checks the header, the section table, every
 * section's range and name, and the program header table now; everything
 * else when first asked for. Throws only `XspliceError` (SPEC §2 errnos).
 */
export function readElf(bytes: Uint8Array): ElfFile {
  return new ElfFileImpl(bytes);
}
