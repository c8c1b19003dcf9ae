/**
 * Which relocations may need a stub or a GOT slot (SPEC §2 "relocations"), and
 * the keys that identify them. Layout counts the keys to reserve room;
 * relocation hands out slots by the same keys, so it never needs more than
 * layout reserved.
 */
import type { Arch, RelocInfo } from "../../arch/index.ts";
import type { ElfFile, ElfSymbol, Rela, RelaSection, Section } from "../../elf/index.ts";
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

/** The relocation sections that apply to placed sections; those for `.debug*` and other non-allocated sections are skipped. */
export function placedRelocations(elf: ElfFile): RelaSection[] {
  return elf.relocationSections().filter((rs) => {
    const target = elf.section(rs.target);
    return rs.target !== 0 && isPlaced(target);
  });
}

/** The symbol a relocation refers to, from the symbol table its section names. */
export function relocSymbol(elf: ElfFile, rs: RelaSection, rela: Rela): ElfSymbol {
  const sym = elf.symbolsOf(elf.section(rs.symtab))[rela.symbol];
  if (!sym) {
    throw new XspliceError(
      "EINVAL",
      `relocation at ${rs.section.name} names symbol ${rela.symbol} out of range`,
      {
        section: rs.section.name,
      },
    );
  }
  return sym;
}

/**
 * Field offsets of relocations that belong to another relocation's instruction
 * sequence (the `__tls_get_addr` call of a TLS general-dynamic sequence, which
 * is rewritten away): they are neither resolved nor applied.
 */
export function consumedOffsets(arch: Arch, rs: RelaSection, target: Section): Set<bigint> {
  const consumed = new Set<bigint>();
  for (const rela of rs.relocations) {
    const row = rowFor(arch, rela, target);
    if (row.consumes !== undefined) consumed.add(rela.offset + BigInt(row.consumes));
  }
  return consumed;
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
    const target = elf.section(rs.target);
    const consumed = consumedOffsets(arch, rs, target);
    for (const rela of rs.relocations) {
      if (consumed.size > 0 && consumed.has(rela.offset)) continue;
      const row = rowFor(arch, rela, target);
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
        if (relocSymbol(elf, rs, rela).section.kind !== "undefined") {
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
