/**
 * `resolveSymbols`: the final address of every symbol a placed relocation
 * uses (SPEC §2 "symbols"). Payload symbols come from the layout and the
 * region bases; undefined ones from caller-supplied sources, tried in the
 * order given — SPEC §2: the target object (statics as `file.c#name`), then
 * loaded payloads' exports, then the other objects' dynamic symbols.
 */
import type { Arch } from "../../arch/index.ts";
import type { ElfFile, ElfSymbol, SectionIndex, SymbolIndex } from "../../elf/index.ts";
import { STB, STT } from "../../elf/index.ts";
import { XspliceError } from "../../errors.ts";
import { placedRelocations, relocSymbol, scanRelocations } from "./_indirect.ts";
import type { Layout, Region } from "./layout.ts";

/** A symbol found outside the payload. */
export interface ResolvedSymbol {
  address: bigint;
  /** `st_size`, when the source knows it (needed by SIZE32/SIZE64 only). */
  size?: bigint;
  /**
   * For a thread-local variable in static TLS (the executable's, or a library
   * loaded at start-up): its offset from the thread pointer, computed by the
   * caller. TLS relocations against a symbol without it are `EOPNOTSUPP`.
   */
  tls?: { tpoff: bigint };
}

/** One place to look undefined symbols up in; `describe` names it in error messages. */
export interface SymbolSource {
  describe: string;
  lookup(name: string): ResolvedSymbol | undefined;
}

/** The base address of each region in the target. */
export type RegionBases = Record<Region, bigint>;

/** A symbol as relocation sees it. */
export interface Resolution {
  name: string;
  address: bigint;
  size?: bigint;
  tpoff?: bigint;
  /** Where it was found: `payload`, `absolute`, a source's `describe`, or `weak (not found)`. */
  from: string;
  /** True when the symbol is defined by the payload itself (always within reach of the payload). */
  local: boolean;
}

/** Resolutions by symbol table and index. */
export interface ResolvedSymbols {
  get(symtab: SectionIndex, index: SymbolIndex): Resolution;
  /** The resolutions of one table by symbol index (holes for symbols no relocation uses), for hot loops. */
  table(symtab: SectionIndex): readonly (Resolution | undefined)[];
}

/** The name a linker uses for the GOT base (GOTPC32/GOTPC64 refer to it). */
export const GOT_SYMBOL = "_GLOBAL_OFFSET_TABLE_";

/** A symbol's name for messages; a section symbol (nameless in gcc output) goes by its section's name. */
function symbolLabel(elf: ElfFile, sym: ElfSymbol): string {
  if (sym.name !== "") return sym.name;
  if (sym.type === STT.SECTION && sym.section.kind === "section") return elf.section(sym.section.index).name;
  return `symbol #${sym.index}`;
}

/** The address of a symbol defined in the payload (in a placed section, or absolute). */
export function payloadSymbolAddress(sym: ElfSymbol, layout: Layout, bases: RegionBases): bigint | undefined {
  if (sym.section.kind === "absolute") return sym.value;
  if (sym.section.kind !== "section") return undefined;
  const p = layout.sections.get(sym.section.index);
  if (!p) return undefined;
  return bases[p.region] + BigInt(p.offset) + (sym.type === STT.SECTION ? 0n : sym.value);
}

function resolveOne(
  elf: ElfFile,
  sym: ElfSymbol,
  layout: Layout,
  bases: RegionBases,
  sources: readonly SymbolSource[],
  gotBase: bigint,
): Resolution {
  const name = symbolLabel(elf, sym);
  switch (sym.section.kind) {
    case "common":
      throw new XspliceError("EINVAL", `COMMON symbol ${name}: build the payload with -fno-common`, {
        symbol: name,
      });
    case "absolute":
      return { name, address: sym.value, size: sym.size, from: "absolute", local: true };
    case "section": {
      if (sym.type === STT.TLS) {
        throw new XspliceError("EOPNOTSUPP", `thread-local ${name} defined in the payload`, { symbol: name });
      }
      const address = payloadSymbolAddress(sym, layout, bases);
      if (address === undefined) {
        const s = elf.section(sym.section.index).name;
        throw new XspliceError("EINVAL", `symbol ${name} is in section ${s}, which is not loaded`, {
          symbol: name,
          section: s,
        });
      }
      return { name, address, size: sym.size, from: "payload", local: true };
    }
    case "undefined": {
      if (sym.index === 0) return { name, address: 0n, size: 0n, from: "null symbol", local: true };
      if (sym.name === GOT_SYMBOL)
        return { name, address: gotBase, size: 0n, from: "payload GOT", local: true };
      for (const src of sources) {
        const r = src.lookup(sym.name);
        if (r)
          return {
            name,
            address: r.address,
            size: r.size,
            tpoff: r.tls?.tpoff,
            from: src.describe,
            local: false,
          };
      }
      // A weak undefined reference that nothing defines is 0, as ld and ld.so make it.
      if (sym.bind === STB.WEAK)
        return { name, address: 0n, size: 0n, from: "weak (not found)", local: false };
      const where = sources.length ? sources.map((s) => s.describe).join(", ") : "no symbol sources";
      throw new XspliceError("ENOENT", `undefined symbol ${name} not found (searched: ${where})`, {
        symbol: name,
      });
    }
  }
}

/**
 * Resolve every symbol used by a relocation of a placed section, in
 * relocation order, so the first missing one is reported (ENOENT) before
 * anything is written. Relocations consumed by a sequence rewrite (the
 * `__tls_get_addr` call of TLS GD) need no symbol. `gotBase` is the address of the payload's GOT area.
 */
export function resolveSymbols(
  elf: ElfFile,
  arch: Arch,
  layout: Layout,
  bases: RegionBases,
  sources: readonly SymbolSource[],
  gotBase: bigint,
): ResolvedSymbols {
  const byTable = new Map<SectionIndex, (Resolution | undefined)[]>();
  for (const rs of placedRelocations(elf)) {
    let table = byTable.get(rs.symtab);
    if (!table) {
      // Sized to the symbol table and filled, so that it stays a plain array: assigning far
      // past the end of an empty one turns it into a dictionary, slow in the relocation loop.
      table = new Array<Resolution | undefined>(elf.symbolsOf(elf.section(rs.symtab)).length).fill(undefined);
      byTable.set(rs.symtab, table);
    }
    // Each symbol once, in first-use order, from the section's scan (consumed relocations left out).
    for (const index of scanRelocations(arch, rs, elf.section(rs.target)).symbols) {
      if (table[index] !== undefined) continue;
      table[index] = resolveOne(elf, relocSymbol(elf, rs, index), layout, bases, sources, gotBase);
    }
  }
  const tableOf = (symtab: SectionIndex): readonly (Resolution | undefined)[] => byTable.get(symtab) ?? [];
  return {
    get(symtab, index) {
      const r = tableOf(symtab)[index];
      if (!r) throw new XspliceError("EINVAL", `symbol ${index} of table ${symtab} was not resolved`);
      return r;
    },
    table: tableOf,
  };
}
