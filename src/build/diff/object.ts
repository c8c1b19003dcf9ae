/**
 * One relocatable object as the differ sees it (SPEC §13): its functions and
 * variables by name, each section's relocations sorted by offset, and what a
 * relocation points at once gas's "section symbol + addend" form is turned
 * back into the named symbol it meant. Built once per input object; the
 * correlator, the comparer and the emitter all read it and never the ELF
 * directly, so the one place that knows gas's conventions is here.
 */
import { basename } from "node:path";
import { archFor } from "../../arch/index.ts";
import type { Arch } from "../../arch/types.ts";
import { ET, SHF, SHT, STB, STT } from "../../elf/defs.ts";
import { type ElfFile, type ElfSymbol, type Rela, readElf, type Section } from "../../elf/index.ts";
import { XspliceError } from "../../errors.ts";

/** A defined function or variable of the object. */
export interface Def {
  sym: ElfSymbol;
  section: Section;
  /** `STT_FUNC` (code) or anything else (data). */
  code: boolean;
}

/** Where a relocation points, resolved to a named definition when there is one. */
export type Referent =
  | { kind: "undefined"; name: string; addend: bigint }
  /** A named function or variable of this object, `addend` relative to its start. */
  | { kind: "def"; def: Def; addend: bigint }
  /** A NUL-terminated string of a mergeable string section: its text and the addend from its start. */
  | { kind: "string"; section: Section; text: string; addend: bigint }
  /** Bytes of a section with no named definition (jump tables, literal pools): offset in it. */
  | { kind: "anon"; section: Section; addend: bigint };

/** Sections whose content is the payload's own business, never compared as program data. */
export function isXspliceSection(name: string): boolean {
  return name.startsWith(".xsplice.") || name === ".modinfo" || name.startsWith(".livepatch.");
}

/** True for a section holding data the program runs with (not debug info, notes or metadata). */
function isProgramSection(s: Section): boolean {
  return (s.flags & SHF.ALLOC) !== 0n && !isXspliceSection(s.name) && s.type !== SHT.NOTE;
}

export class ObjectView {
  readonly elf: ElfFile;
  readonly arch: Arch;
  /** The STT_FILE name gcc wrote (the source as named on its command line). */
  readonly file: string | undefined;
  readonly symbols: readonly ElfSymbol[];
  /** Named functions and variables by name (locals and globals; gcc names are unique in one object). */
  readonly defs = new Map<string, Def>();
  /** Functions that are another name of an earlier function on the same bytes. */
  readonly aliases = new Set<Def>();
  readonly #relocs = new Map<number, Rela[]>();
  readonly #bySection = new Map<number, Def[]>();

  constructor(
    readonly path: string,
    bytes: Uint8Array,
  ) {
    try {
      this.elf = readElf(bytes);
    } catch (err) {
      if (err instanceof XspliceError) throw new XspliceError(err.errno, `${path}: ${err.message}`);
      throw err;
    }
    if (this.elf.header.type !== ET.REL) {
      throw new XspliceError("EINVAL", `${path} is not a relocatable object (gcc -c output)`);
    }
    this.arch = archFor(this.elf.header.machine);
    this.symbols = this.elf.symbols();
    if (this.symbols.length === 0) throw new XspliceError("EINVAL", `${path} has no symbol table`);
    this.file = this.symbols.find((s) => s.type === STT.FILE && s.name !== "")?.name;
    for (const s of this.symbols) {
      if (s.section.kind !== "section" || s.name === "") continue;
      if (s.type !== STT.FUNC && s.type !== STT.OBJECT && s.type !== STT.TLS) continue;
      const section = this.elf.section(s.section.index);
      if (!isProgramSection(section)) continue;
      const def: Def = { sym: s, section, code: s.type === STT.FUNC };
      this.defs.set(s.name, def);
      const list = this.#bySection.get(section.index);
      if (list) list.push(def);
      else this.#bySection.set(section.index, [def]);
    }
    for (const rs of this.elf.relocationSections()) {
      const list = [...rs.relocations].sort((a, b) => Number(a.offset - b.offset));
      this.#relocs.set(rs.target, list);
    }
    this.#checkFunctionSections();
  }

  /**
   * Each function must have a section of its own (`-ffunction-sections`):
   * otherwise one function cannot be taken without its neighbours. Several
   * symbols on the same bytes (identical code folded by gcc's ipa-icf, or
   * `alias` attributes) are one function; the first is kept, the others go
   * to `aliases`.
   */
  #checkFunctionSections(): void {
    for (const [, defs] of this.#bySection) {
      const funcs = defs.filter((d) => d.code);
      const first = funcs[0];
      if (first === undefined) continue;
      const same = funcs.every((d) => d.sym.value === first.sym.value && d.sym.size === first.sym.size);
      if (same) {
        for (const d of funcs.slice(1)) this.aliases.add(d);
        continue;
      }
      const names = funcs.map((d) => d.sym.name).join(", ");
      throw new XspliceError(
        "EINVAL",
        `${this.path}: functions ${names} share section ${first.section.name}; build with -ffunction-sections -fdata-sections`,
      );
    }
  }

  /** Relocations applying to section `index`, by offset. */
  relocations(index: number): readonly Rela[] {
    return this.#relocs.get(index) ?? [];
  }

  /** Relocations whose field lies in `[from, from + size)` of `section`. */
  relocationsIn(section: Section, from: bigint, size: bigint): Rela[] {
    return this.relocations(section.index).filter((r) => r.offset >= from && r.offset < from + size);
  }

  /** Named definitions in a section, in symbol-table order. */
  defsIn(section: Section): readonly Def[] {
    return this.#bySection.get(section.index) ?? [];
  }

  /** Bytes of a definition (empty for `.bss`). */
  bytesOf(def: Def): Uint8Array {
    if (def.section.type === SHT.NOBITS) return new Uint8Array(0);
    const from = Number(def.sym.value);
    return def.section.data().subarray(from, from + Number(def.sym.size));
  }

  /** Width of a relocation's field in bytes (8 for a type this machine's table lacks: masks more, never less). */
  fieldSize(type: number): number {
    return this.arch.relocation(type)?.size ?? 8;
  }

  /** What relocation `r` (in any section of this object) points at. */
  referent(r: Rela): Referent {
    const sym = this.symbols[r.symbol];
    if (sym === undefined || r.symbol === 0) return { kind: "undefined", name: "", addend: r.addend };
    if (sym.section.kind !== "section") return { kind: "undefined", name: sym.name, addend: r.addend };
    const named = this.defs.get(sym.name);
    if (named !== undefined && named.sym === sym) return { kind: "def", def: named, addend: r.addend };
    const section = this.elf.section(sym.section.index);
    const at = sym.value + r.addend;
    if ((section.flags & SHF.STRINGS) !== 0n) {
      // A .LC label is the string's start; a section symbol + addend points into it, past
      // the PC-relative bias when the field is one (the bias is in the compared bytes).
      const bias = this.arch.relocation(r.type)?.pcRelative && sym.type === STT.SECTION ? 4n : 0n;
      const data = section.data();
      const pos = Math.max(0, Math.min(data.length - 1, Number(at + bias)));
      let start = pos;
      while (start > 0 && data[start - 1] !== 0) start--;
      let end = data.indexOf(0, pos);
      if (end < 0) end = data.length;
      const text = new TextDecoder().decode(data.subarray(start, end));
      return { kind: "string", section, text, addend: at - BigInt(start) };
    }
    const defs = this.defsIn(section);
    // -fdata-sections gives each variable its own section; a PC-relative addend (-4, -5, ...)
    // may point just before it, so a single definition owns the whole section.
    if (defs.length === 1) return { kind: "def", def: defs[0]!, addend: at - defs[0]!.sym.value };
    const covering = defs.find((d) => at >= d.sym.value && at < d.sym.value + (d.sym.size || 1n));
    if (covering) return { kind: "def", def: covering, addend: at - covering.sym.value };
    return { kind: "anon", section, addend: at };
  }

  /**
   * The name a static of this object has in the linked target: `file.c#name`
   * (SPEC §2), by the file's base name, which the name rule also accepts: the
   * rebuilt tree is somewhere else than the one the target was built in.
   */
  targetName(sym: ElfSymbol): string {
    if (sym.bind !== STB.LOCAL || this.file === undefined) return sym.name;
    return `${basename(this.file)}#${sym.name}`;
  }
}

/** True for a definition in writable data (`.data`, `.bss`, `.tdata`, `.data.rel.ro`). */
export function isWritable(def: Def): boolean {
  return (def.section.flags & SHF.WRITE) !== 0n;
}

/** True for a thread-local definition. */
export function isTls(def: Def): boolean {
  return (def.section.flags & SHF.TLS) !== 0n || def.sym.type === STT.TLS;
}
