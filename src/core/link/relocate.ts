/**
 * `linkPayload`: turn a payload's sections into the final bytes of its three
 * regions at given base addresses (SPEC §2 "relocations"). Pure: no process
 * access; the caller supplies the bases and the symbol sources and writes the
 * result. Out-of-reach branches to other objects go through stubs, out-of-reach
 * address computations and every GOT-type relocation through GOT slots, both
 * in the payload's own memory (see docs/architecture.md "Linking").
 */
import type { Arch, RelocInfo, RelocValues } from "../../arch/index.ts";
import type { ElfFile, Rela, RelaSection, SectionIndex, SymbolIndex } from "../../elf/index.ts";
import { SHT, STB, STT } from "../../elf/index.ts";
import { XspliceError } from "../../errors.ts";
import { hex } from "../../hex.ts";
import { gotKey, leaKey, placedRelocations, scanRelocations, stubKey, symbolKey } from "./_indirect.ts";
import { type Layout, REGIONS, type Region, type Reserved } from "./layout.ts";
import {
  payloadSymbolAddress,
  type RegionBases,
  type Resolution,
  resolveSymbols,
  type SymbolSource,
} from "./resolve.ts";

/** A stub written at the end of RX: a jump to an absolute address. */
export interface Stub {
  address: bigint;
  target: bigint;
  symbol: string;
}

/** A GOT slot written at the end of R: a symbol's address, or its thread-pointer offset. */
export interface GotSlot {
  address: bigint;
  value: bigint;
  kind: "address" | "tpoff";
  symbol: string;
}

/** The linked payload: bytes to write and the addresses the loader needs. */
export interface LinkedImage {
  /** Final bytes of each region, `layout.sizes[region]` long (zero-filled past the sections). */
  regions: Record<Region, Uint8Array>;
  bases: RegionBases;
  /** Final addresses of the payload's defined global and weak symbols (exports, funcs, hooks). */
  symbols: Map<string, bigint>;
  /** Final address of a placed section; EINVAL for a section that is not placed. */
  sectionAddress(index: SectionIndex): bigint;
  /** Final address of any defined payload symbol of `.symtab`, local ones included. */
  symbolAddress(index: SymbolIndex): bigint | undefined;
  stubs: Stub[];
  gotSlots: GotSlot[];
  /** The GOT area's address (GOTPC32/GOTOFF64 refer to it). */
  gotBase: bigint;
}

/** Hands out stubs or slots by key, in first-use order, within what the layout reserved. */
class Pool<T> {
  readonly entries: T[] = [];
  readonly #byKey = new Map<string, number>();
  constructor(
    readonly area: Reserved,
    readonly base: bigint,
  ) {}
  take(key: string, make: (address: bigint) => T): bigint {
    let i = this.#byKey.get(key);
    if (i === undefined) {
      i = this.entries.length;
      if (i >= this.area.count)
        throw new XspliceError("EINVAL", `${key}: more entries than the layout reserved`);
      this.#byKey.set(key, i);
      this.entries.push(make(this.addressOf(i)));
    }
    return this.addressOf(i);
  }
  addressOf(i: number): bigint {
    return this.base + BigInt(this.area.offset + i * this.area.pitch);
  }
}

function checkBases(layout: Layout, bases: RegionBases): void {
  for (const r of REGIONS) {
    if (layout.sizes[r] === 0) continue;
    if (bases[r] < 0n || bases[r] % BigInt(layout.align[r]) !== 0n) {
      throw new XspliceError(
        "EINVAL",
        `${r} region base ${hex(bases[r])} is not aligned to ${layout.align[r]}`,
        {
          address: bases[r],
        },
      );
    }
  }
}

function tlsOffset(res: Resolution, row: RelocInfo): bigint {
  if (res.tpoff === undefined) {
    throw new XspliceError(
      "EOPNOTSUPP",
      `${row.name} against ${res.name}: not a thread-local in static TLS (only the initial-exec, local-exec and general-dynamic-to-local-exec models are supported)`,
      { symbol: res.name },
    );
  }
  return res.tpoff;
}

/**
 * Link the payload at `bases`: copy every placed section into its region
 * (`SHT_NOBITS` stays zero), resolve symbols through `sources` (see
 * {@link resolveSymbols}), and apply every RELA relocation of a placed
 * section with the architecture's table. Relocations of non-allocated
 * sections (`.rela.debug*`) are skipped. Errors: unsupported type
 * `EOPNOTSUPP`; field outside its section `EINVAL`; value out of range and not
 * reroutable `EOVERFLOW`; unknown symbol `ENOENT`.
 */
export function linkPayload(
  elf: ElfFile,
  arch: Arch,
  layout: Layout,
  bases: RegionBases,
  sources: readonly SymbolSource[],
): LinkedImage {
  checkBases(layout, bases);
  const regions: Record<Region, Uint8Array> = {
    rx: new Uint8Array(layout.sizes.rx),
    rw: new Uint8Array(layout.sizes.rw),
    r: new Uint8Array(layout.sizes.r),
  };
  const sectionAddress = (index: SectionIndex): bigint => {
    const p = layout.sections.get(index);
    if (!p) throw new XspliceError("EINVAL", `section ${index} is not placed in memory`);
    return bases[p.region] + BigInt(p.offset);
  };
  for (const [index, p] of layout.sections) {
    const s = elf.section(index);
    if (s.type !== SHT.NOBITS) regions[p.region].set(s.data(), p.offset);
  }

  const stubs = new Pool<Stub>(layout.stubs, bases.rx);
  const slots = new Pool<GotSlot>(layout.got, bases.r);
  const gotBase = slots.addressOf(0);
  const resolved = resolveSymbols(elf, arch, layout, bases, sources, gotBase);
  const gotSlots = new Map<number, bigint>();
  const tpoffSlots = new Map<number, bigint>();
  const values: RelocValues = { symbol: 0n, addend: 0n, place: 0n, slot: 0n, gotBase, size: 0n, tpoff: 0n };

  for (const rs of placedRelocations(elf)) {
    const target = elf.section(rs.target);
    const p = layout.sections.get(rs.target)!;
    if (target.type === SHT.NOBITS && rs.relocations.length > 0) {
      throw new XspliceError("EINVAL", `${rs.section.name} relocates ${target.name}, which has no bytes`, {
        section: rs.section.name,
      });
    }
    const code = regions[p.region].subarray(p.offset, p.offset + p.size);
    const sectionBase = bases[p.region] + BigInt(p.offset);
    // Rows, and the relocations consumed by an instruction-sequence rewrite (TLS GD → LE).
    const { rows, consumed } = scanRelocations(arch, rs, target);
    const table = resolved.table(rs.symtab);
    const ctx: ApplyContext = {
      arch,
      code,
      rs,
      sectionBase,
      gotBase,
      layout,
      stubs,
      slots,
      gotSlots,
      tpoffSlots,
      values,
    };
    const limit = BigInt(target.size);
    const relocations = rs.relocations;
    for (let i = 0; i < relocations.length; i++) {
      const rela = relocations[i]!;
      if (consumed.size > 0 && consumed.has(rela.offset)) continue;
      const row = rows[i]!;
      // Compared as bigints: a corrupt offset may lie far above 2^53.
      if (rela.offset < 0n || rela.offset > limit || Number(rela.offset) + row.size > target.size) {
        throw new XspliceError(
          "EINVAL",
          `${row.name} field at ${target.name}+${hex(rela.offset)} (${row.size} bytes) is outside the ${target.size}-byte section`,
          { section: target.name },
        );
      }
      applyOne(ctx, row, rela, table[rela.symbol] ?? resolved.get(rs.symtab, rela.symbol));
    }
  }

  for (const s of stubs.entries) regions.rx.set(arch.absoluteStub(s.target), Number(s.address - bases.rx));
  for (const g of slots.entries) {
    new DataView(regions.r.buffer).setBigUint64(
      Number(g.address - bases.r),
      BigInt.asUintN(64, g.value),
      true,
    );
  }

  const symtab = elf.symbolTable();
  const all = symtab ? elf.symbolsOf(symtab) : [];
  const symbols = new Map<string, bigint>();
  for (const sym of all) {
    if (sym.bind !== STB.GLOBAL && sym.bind !== STB.WEAK) continue;
    if (sym.type === STT.SECTION || sym.type === STT.FILE) continue;
    const a = payloadSymbolAddress(sym, layout, bases);
    if (a !== undefined && sym.name !== "") symbols.set(sym.name, a);
  }
  return {
    regions,
    bases,
    symbols,
    sectionAddress,
    symbolAddress: (index) => {
      const sym = all[index];
      return sym ? payloadSymbolAddress(sym, layout, bases) : undefined;
    },
    stubs: stubs.entries,
    gotSlots: slots.entries,
    gotBase,
  };
}

const REL32_MIN = -(1n << 31n);
const REL32_END = 1n << 31n;

function fitsRel32(v: bigint): boolean {
  return v >= REL32_MIN && v < REL32_END;
}

/** What every relocation of one RELA section shares. */
interface ApplyContext {
  arch: Arch;
  /** The bytes of the relocated section. */
  code: Uint8Array;
  rs: RelaSection;
  sectionBase: bigint;
  gotBase: bigint;
  layout: Layout;
  stubs: Pool<Stub>;
  slots: Pool<GotSlot>;
  /**
   * GOT slot addresses already taken, by `symbolKey` (address and tpoff slots): most
   * relocations of a big payload are GOTPCRELX to a few globals, and building the
   * pool's string key for each of them was a third of the link.
   */
  gotSlots: Map<number, bigint>;
  tpoffSlots: Map<number, bigint>;
  /** Scratch values handed to the row (see `applyOne`). */
  values: RelocValues;
}

/** Apply one relocation, rerouting through a stub or slot where the kind and the instruction allow. */
function applyOne(ctx: ApplyContext, row: RelocInfo, rela: Rela, res: Resolution): void {
  const { arch, code, rs, layout, stubs, slots } = ctx;
  const field = Number(rela.offset);
  // One values object for the whole link, refilled per relocation (rows never keep it):
  // an object per relocation was most of the link's garbage.
  const v = ctx.values;
  v.symbol = res.address;
  v.addend = rela.addend;
  v.place = ctx.sectionBase + rela.offset;
  v.slot = 0n;
  v.gotBase = ctx.gotBase;
  v.size = 0n;
  v.tpoff = 0n;
  switch (row.kind) {
    case "none":
      return;
    case "absolute":
    case "gotbase":
      break;
    case "size":
      if (res.size === undefined) {
        throw new XspliceError("EINVAL", `${row.name} against ${res.name}: its size is unknown`, {
          symbol: res.name,
        });
      }
      v.size = res.size;
      break;
    case "got": {
      const k = symbolKey(rs, rela);
      let slot = ctx.gotSlots.get(k);
      if (slot === undefined) {
        slot = slots.take(gotKey("address", rs, rela), (address) => ({
          address,
          value: res.address,
          kind: "address",
          symbol: res.name,
        }));
        ctx.gotSlots.set(k, slot);
      }
      v.slot = slot;
      break;
    }
    case "gottpoff": {
      const tpoff = tlsOffset(res, row);
      const k = symbolKey(rs, rela);
      let slot = ctx.tpoffSlots.get(k);
      if (slot === undefined) {
        slot = slots.take(gotKey("tpoff", rs, rela), (address) => ({
          address,
          value: tpoff,
          kind: "tpoff",
          symbol: res.name,
        }));
        ctx.tpoffSlots.set(k, slot);
      }
      v.slot = slot;
      break;
    }
    case "tpoff":
    case "tlsgd":
      v.tpoff = tlsOffset(res, row);
      break;
    case "pc":
    case "plt": {
      if (row.size !== 4 || fitsRel32(row.compute(v))) break;
      // The field is the last 4 bytes of its instruction, so the instruction reaches S + A + 4.
      const reach = res.address + rela.addend + BigInt(row.size);
      const use = arch.pcFieldUse(code, field);
      const sKey = stubKey(rs, rela);
      const lKey = leaKey(rs, rela);
      if (use === "branch" && layout.keys.stubs.has(sKey)) {
        const stub = stubs.take(sKey, (address) => ({ address, target: reach, symbol: res.name }));
        v.symbol = stub;
        v.addend = -BigInt(row.size);
      } else if (use === "address" && row.kind === "pc" && layout.keys.slots.has(lKey)) {
        const slot = slots.take(lKey, (address) => ({
          address,
          value: reach,
          kind: "address",
          symbol: res.name,
        }));
        arch.loadFromSlot(code, field);
        v.symbol = slot;
        v.addend = -BigInt(row.size);
      }
      break; // anything else: the row reports EOVERFLOW
    }
  }
  row.apply(code, field, v, res.name);
}
