/**
 * Which relocations may need a stub or a GOT slot (SPEC §2 "relocations"), and
 * the keys that identify them. Layout counts the keys to reserve room;
 * relocation hands out slots by the same keys, so it never needs more than
 * layout reserved.
 */
import type { Arch, RelocInfo } from "../../arch/index.ts";
import type { ElfFile, ElfSymbol, Rela, RelaSection, Section, SymbolIndex } from "../../elf/index.ts";
import { SHF, SHT } from "../../elf/index.ts";
import { XspliceError } from "../../errors.ts";

/** The table row for a relocation; `EOPNOTSUPP` naming the type when the architecture has none. */
export function rowFor(arch: Arch, rela: Rela, section: Section): RelocInfo {
  const row = arch.relocation(rela.type);
  if (!row) {
    throw new XspliceError(
      "EOPNOTSUPP",
      `unsupported relocation ${arch.relocationName(rela.type)} at ${section.name}+0x${rela.offset.toString(16)}`,
      { section: section.name },
    );
  }
  return row;
}

/** True for a section that is placed in the target's memory (relocation tables never are). */
export function isPlaced(section: Section): boolean {
  return (section.flags & SHF.ALLOC) !== 0n && section.type !== SHT.RELA && section.type !== SHT.REL;
}

const placedOf = new WeakMap<ElfFile, RelaSection[]>();

/**
 * The relocation sections that apply to placed sections; those for `.debug*` and other
 * non-allocated sections are skipped. Kept per file: layout, resolution and relocation each ask.
 */
export function placedRelocations(elf: ElfFile): RelaSection[] {
  let placed = placedOf.get(elf);
  if (!placed) {
    placed = elf.relocationSections().filter((rs) => {
      const target = elf.section(rs.target);
      return rs.target !== 0 && isPlaced(target);
    });
    placedOf.set(elf, placed);
  }
  return placed;
}

/** Symbol `index` of the symbol table relocation section `rs` names. */
export function relocSymbol(elf: ElfFile, rs: RelaSection, index: SymbolIndex): ElfSymbol {
  const sym = elf.symbolsOf(elf.section(rs.symtab))[index];
  if (!sym) {
    throw new XspliceError("EINVAL", `relocation at ${rs.section.name} names symbol ${index} out of range`, {
      section: rs.section.name,
    });
  }
  return sym;
}

/** What layout, resolution and relocation need of one RELA section, found in one pass over it. */
export interface RelaScan {
  /** The table row of each relocation, by position in `rs.relocations`. */
  rows: RelocInfo[];
  /**
   * Field offsets of relocations that belong to another relocation's instruction
   * sequence (the `__tls_get_addr` call of a TLS general-dynamic sequence, which
   * is rewritten away): they are neither resolved nor applied.
   */
  consumed: Set<bigint>;
  /** The symbols the other relocations use, each once, in first-use order. */
  symbols: SymbolIndex[];
}

const scans = new WeakMap<RelaSection, { arch: Arch; scan: RelaScan }>();

/**
 * Scan `rs` (relocating `target`) once and keep the result with it: a big payload has
 * tens of thousands of relocations, and layout, resolution and relocation each walked
 * all of them once or twice (rows, consumed offsets, symbols) before the applying pass.
 * An unsupported type is `EOPNOTSUPP` (the first one in the section).
 */
export function scanRelocations(arch: Arch, rs: RelaSection, target: Section): RelaScan {
  const kept = scans.get(rs);
  if (kept && kept.arch === arch) return kept.scan;
  const relocations = rs.relocations;
  const rows = new Array<RelocInfo>(relocations.length);
  const consumed = new Set<bigint>();
  for (let i = 0; i < relocations.length; i++) {
    const rela = relocations[i]!;
    const row = rowFor(arch, rela, target);
    rows[i] = row;
    if (row.consumes !== undefined) consumed.add(rela.offset + BigInt(row.consumes));
  }
  const seen = new Set<SymbolIndex>();
  const symbols: SymbolIndex[] = [];
  for (const rela of relocations) {
    if (seen.has(rela.symbol) || (consumed.size > 0 && consumed.has(rela.offset))) continue;
    seen.add(rela.symbol);
    symbols.push(rela.symbol);
  }
  const scan = { rows, consumed, symbols };
  scans.set(rs, { arch, scan });
  return scan;
}

/** A GOT slot holding a symbol's address (`got` kinds) or thread-pointer offset (`gottpoff`). */
export function gotKey(kind: "address" | "tpoff", rs: RelaSection, rela: Rela): string {
  return `${kind}:${rs.symtab}:${rela.symbol}`;
}

/**
 * A relocation's symbol (table and index) as one number, for maps in the hot loops:
 * both are below 2^32, so the key is exact in a double.
 */
export function symbolKey(rs: RelaSection, rela: Rela): number {
  return rs.symtab * 0x100000000 + rela.symbol;
}

/** A GOT slot replacing an out-of-reach `lea` of symbol + addend. */
export function leaKey(rs: RelaSection, rela: Rela): string {
  return `lea:${rs.symtab}:${rela.symbol}:${rela.addend}`;
}

/** A stub for an out-of-reach branch to symbol + addend. */
export function stubKey(rs: RelaSection, rela: Rela): string {
  return `stub:${rs.symtab}:${rela.symbol}:${rela.addend}`;
}

/** Every stub and GOT-slot key the payload's relocations may need. */
export interface IndirectionKeys {
  stubs: Set<string>;
  slots: Set<string>;
}

/**
 * Collect the keys: GOT-type relocations always take a slot; PC-relative
 * references to undefined symbols (which live in other objects, perhaps out
 * of reach) may take a stub (branches) or a slot (address computations).
 * References inside the payload never do: its regions are placed in reach of
 * each other.
 */
export function indirectionKeys(elf: ElfFile, arch: Arch): IndirectionKeys {
  const stubs = new Set<string>();
  const slots = new Set<string>();
  // Symbols (by `symbolKey`) whose GOT key is already in `slots`, by kind, and symbols known to
  // be defined: thousands of relocations against a few symbols need not build a key string each.
  const gotDone = new Set<number>();
  const tpoffDone = new Set<number>();
  const defined = new Set<number>();
  for (const rs of placedRelocations(elf)) {
    const { rows, consumed } = scanRelocations(arch, rs, elf.section(rs.target));
    const relocations = rs.relocations;
    for (let i = 0; i < relocations.length; i++) {
      const rela = relocations[i]!;
      if (consumed.size > 0 && consumed.has(rela.offset)) continue;
      const row = rows[i]!;
      const k = symbolKey(rs, rela);
      if (row.kind === "got") {
        if (gotDone.has(k)) continue;
        gotDone.add(k);
        slots.add(gotKey("address", rs, rela));
      } else if (row.kind === "gottpoff") {
        if (tpoffDone.has(k)) continue;
        tpoffDone.add(k);
        slots.add(gotKey("tpoff", rs, rela));
      } else if ((row.kind === "pc" || row.kind === "plt") && row.size === 4) {
        if (defined.has(k)) continue;
        if (relocSymbol(elf, rs, rela.symbol).section.kind !== "undefined") {
          defined.add(k);
          continue;
        }
        stubs.add(stubKey(rs, rela));
        if (row.kind === "pc") slots.add(leaKey(rs, rela));
      }
    }
  }
  return { stubs, slots };
}
