/**
 * Writes ELF relocatable objects (`ET_REL`), e.g. payloads (SPEC §1) and test
 * inputs. The caller names sections, symbols and relocations; the writer makes
 * `.shstrtab`, `.strtab`, `.symtab` (locals first, `sh_info` = first global,
 * as the gABI requires) and one `.rela<name>` per relocated section.
 *
 * Two phases, as Rust `object`'s writer: every section index and file range is
 * reserved first, then everything is written in the same order and each write
 * is checked against its reservation, so a layout bug fails loudly instead of
 * producing a subtly corrupt object.
 */
import { XspliceError } from "../errors.ts";
import { codecFor, type RawShdr, type RecordCodec } from "./_raw.ts";
import { EI, ELFMAG, EM, ET, EV_CURRENT, SHN, SHT, STB, STT, STV } from "./defs.ts";

/** One section to write. `link`/`info` name other sections (generated ones included). */
export interface WriterSection {
  name: string;
  /** `SHT`; default `PROGBITS`, or `NOBITS` when only `size` is given. */
  type?: number;
  /** `SHF` bits. */
  flags?: bigint;
  /** Power of two; default 1. */
  addralign?: number;
  /** Contents (not for `NOBITS`). */
  data?: Uint8Array;
  /** Size of a `NOBITS` section. */
  size?: number;
  entsize?: number;
  /** Section named by `sh_link`. */
  link?: string;
  /** Section named by `sh_info`. */
  info?: string;
}

/** One symbol to write. */
export interface WriterSymbol {
  name: string;
  value?: bigint;
  size?: bigint;
  /** `STT`; default `NOTYPE`. */
  type?: number;
  /** `STB`; default `GLOBAL`. */
  bind?: number;
  /** `STV`; default `DEFAULT`. */
  visibility?: number;
  /** A section name, or `"undefined"` (SHN_UNDEF), `"absolute"` (SHN_ABS), `"common"` (SHN_COMMON). */
  section: string;
}

/** One relocation. `symbol` is a unique symbol name, an index into `spec.symbols`, or absent for none. */
export interface WriterRela {
  offset: bigint;
  type: number;
  symbol?: string | number;
  addend?: bigint;
}

/** Everything `writeRelocatable` needs. */
export interface RelocatableSpec {
  /** `EM`; default `X86_64`. */
  machine?: number;
  osabi?: number;
  /** `e_flags`. */
  flags?: number;
  sections: WriterSection[];
  symbols?: WriterSymbol[];
  /** Relocations keyed by the name of the section they apply to. */
  relocations?: Record<string, WriterRela[]>;
}

const SPECIAL_SECTIONS: Record<string, number> = {
  undefined: SHN.UNDEF,
  absolute: SHN.ABS,
  common: SHN.COMMON,
};

function invalid(message: string): XspliceError {
  return new XspliceError("EINVAL", `writeRelocatable: ${message}`);
}

/** A string table under construction; identical strings share one offset. */
class StrtabBuilder {
  readonly #offsets = new Map<string, number>([["", 0]]);
  readonly #parts: Uint8Array[] = [new Uint8Array(1)];
  size = 1;
  add(s: string): number {
    const hit = this.#offsets.get(s);
    if (hit !== undefined) return hit;
    if (s.includes("\0")) throw invalid(`name ${JSON.stringify(s)} contains a NUL`);
    const bytes = new TextEncoder().encode(`${s}\0`);
    const at = this.size;
    this.#offsets.set(s, at);
    this.#parts.push(bytes);
    this.size += bytes.length;
    return at;
  }
  bytes(): Uint8Array {
    const out = new Uint8Array(this.size);
    let at = 0;
    for (const p of this.#parts) {
      out.set(p, at);
      at += p.length;
    }
    return out;
  }
}

interface Range {
  what: string;
  offset: number;
  size: number;
}

/** Phase 1: file ranges handed out in order. */
class Reserver {
  readonly ranges: Range[] = [];
  end: number;
  constructor(start: number) {
    this.end = start;
  }
  reserve(what: string, size: number, align: number): number {
    const offset = Math.ceil(this.end / align) * align;
    this.ranges.push({ what, offset, size });
    this.end = offset + size;
    return offset;
  }
}

/** Phase 2: writes that must land exactly on the ranges reserved, in order. */
class Emitter {
  #next = 0;
  constructor(
    readonly out: Uint8Array,
    readonly dv: DataView,
    readonly ranges: readonly Range[],
  ) {}
  /** Write `size` bytes of `what` through `fill(offset)`; asserts it is the next reservation. */
  write(what: string, size: number, fill: (offset: number) => void): void {
    const r = this.ranges[this.#next++];
    if (!r || r.what !== what || r.size !== size) {
      throw new XspliceError(
        "EINVAL",
        `writeRelocatable: internal layout error: writing ${what} (${size} bytes) but reserved ${r ? `${r.what} (${r.size} bytes)` : "nothing"}`,
      );
    }
    fill(r.offset);
  }
  done(): void {
    if (this.#next !== this.ranges.length) {
      throw new XspliceError(
        "EINVAL",
        `writeRelocatable: internal layout error: ${this.ranges.length - this.#next} ranges not written`,
      );
    }
  }
}

interface Planned {
  name: string;
  shdr: RawShdr;
  /** How to produce the contents (undefined for NOBITS/NULL). */
  contents?: () => Uint8Array;
  linkName?: string;
  infoName?: string;
  align: number;
}

function isPow2(n: number): boolean {
  return Number.isInteger(n) && n > 0 && (n & (n - 1)) === 0;
}

/**
 * Write an ELF64 little-endian `ET_REL` object. Unknown or duplicate section
 * names, unknown or ambiguous symbol references, bad alignment: EINVAL.
 */
export function writeRelocatable(spec: RelocatableSpec): Uint8Array {
  // The one class/byte-order decision of the writer; ELF32 or big-endian would pick another codec here.
  const codec: RecordCodec = codecFor(2, 1)!;
  const relocations = spec.relocations ?? {};
  const symbols = spec.symbols ?? [];

  // Phase 1a: section indices.
  const planned: Planned[] = [{ name: "", shdr: rawShdr(SHT.NULL, 0n, 0), align: 1 }];
  for (const s of spec.sections) {
    if (s.name in SPECIAL_SECTIONS) throw invalid(`section name ${s.name} is reserved`);
    const type = s.type ?? (s.data === undefined && s.size !== undefined ? SHT.NOBITS : SHT.PROGBITS);
    const align = s.addralign ?? 1;
    if (!isPow2(align)) throw invalid(`section ${s.name}: addralign ${align} is not a power of two`);
    if (type === SHT.NOBITS && s.data !== undefined) throw invalid(`section ${s.name}: NOBITS with data`);
    const data = s.data ?? new Uint8Array(0);
    const size = type === SHT.NOBITS ? (s.size ?? 0) : data.length;
    const shdr = rawShdr(type, s.flags ?? 0n, align);
    shdr.size = BigInt(size);
    shdr.entsize = BigInt(s.entsize ?? 0);
    const p: Planned = { name: s.name, shdr, align, linkName: s.link, infoName: s.info };
    if (type !== SHT.NOBITS) p.contents = () => data;
    planned.push(p);
    const relas = relocations[s.name];
    if (relas !== undefined) {
      const r = rawShdr(SHT.RELA, 0x40n /* SHF_INFO_LINK */, 8);
      r.entsize = BigInt(codec.size.rela);
      r.size = BigInt(relas.length * codec.size.rela);
      planned.push({ name: `.rela${s.name}`, shdr: r, align: 8, linkName: ".symtab", infoName: s.name });
    }
  }
  for (const target of Object.keys(relocations)) {
    if (!spec.sections.some((s) => s.name === target))
      throw invalid(`relocations for unknown section ${target}`);
  }
  const symtabPlan: Planned = {
    name: ".symtab",
    shdr: rawShdr(SHT.SYMTAB, 0n, 8),
    align: 8,
    linkName: ".strtab",
  };
  symtabPlan.shdr.entsize = BigInt(codec.size.sym);
  const strtabPlan: Planned = { name: ".strtab", shdr: rawShdr(SHT.STRTAB, 0n, 1), align: 1 };
  const shstrtabPlan: Planned = { name: ".shstrtab", shdr: rawShdr(SHT.STRTAB, 0n, 1), align: 1 };
  planned.push(symtabPlan, strtabPlan, shstrtabPlan);
  if (planned.length >= SHN.LORESERVE) throw invalid(`${planned.length} sections need extended numbering`);

  const indexOf = new Map<string, number>();
  planned.forEach((p, i) => {
    if (i === 0) return;
    if (indexOf.has(p.name)) throw invalid(`duplicate section name ${p.name}`);
    indexOf.set(p.name, i);
  });
  const sectionRef = (name: string, what: string): number => {
    const i = indexOf.get(name);
    if (i === undefined) throw invalid(`${what} names unknown section ${name}`);
    return i;
  };
  for (const p of planned) {
    if (p.linkName !== undefined) p.shdr.link = sectionRef(p.linkName, `section ${p.name} link`);
    if (p.infoName !== undefined) p.shdr.info = sectionRef(p.infoName, `section ${p.name} info`);
  }

  // Phase 1b: symbol indices (locals first) and string tables.
  const order = [
    ...symbols.map((s, i) => ({ s, i })).filter(({ s }) => (s.bind ?? STB.GLOBAL) === STB.LOCAL),
    ...symbols.map((s, i) => ({ s, i })).filter(({ s }) => (s.bind ?? STB.GLOBAL) !== STB.LOCAL),
  ];
  const finalIndex = new Array<number>(symbols.length);
  order.forEach(({ i }, k) => {
    finalIndex[i] = k + 1;
  });
  const strtab = new StrtabBuilder();
  const rawSyms = order.map(({ s }) => {
    const shndx = SPECIAL_SECTIONS[s.section] ?? sectionRef(s.section, `symbol ${s.name}`);
    const type = s.type ?? STT.NOTYPE;
    const bind = s.bind ?? STB.GLOBAL;
    return {
      name: strtab.add(s.name),
      info: ((bind & 0xf) << 4) | (type & 0xf),
      other: (s.visibility ?? STV.DEFAULT) & 0x3,
      shndx,
      value: s.value ?? 0n,
      size: s.size ?? 0n,
    };
  });
  symtabPlan.shdr.info = 1 + order.filter(({ s }) => (s.bind ?? STB.GLOBAL) === STB.LOCAL).length;
  symtabPlan.shdr.size = BigInt((rawSyms.length + 1) * codec.size.sym);
  const byName = new Map<string, number[]>();
  symbols.forEach((s, i) => {
    byName.set(s.name, [...(byName.get(s.name) ?? []), i]);
  });
  const symbolRef = (ref: string | number | undefined, where: string): number => {
    if (ref === undefined) return 0;
    if (typeof ref === "number") {
      const f = finalIndex[ref];
      if (f === undefined) throw invalid(`${where}: symbol index ${ref} out of range`);
      return f;
    }
    const hits = byName.get(ref) ?? [];
    if (hits.length !== 1)
      throw invalid(
        `${where}: symbol name ${JSON.stringify(ref)} ${hits.length ? "is ambiguous" : "unknown"}`,
      );
    return finalIndex[hits[0]!]!;
  };
  const relaData = new Map<string, Array<{ offset: bigint; type: number; sym: number; addend: bigint }>>();
  for (const [target, list] of Object.entries(relocations)) {
    relaData.set(
      `.rela${target}`,
      list.map((r, k) => ({
        offset: r.offset,
        type: r.type,
        sym: symbolRef(r.symbol, `relocation ${k} of ${target}`),
        addend: r.addend ?? 0n,
      })),
    );
  }
  const shstrtab = new StrtabBuilder();
  for (const p of planned) p.shdr.name = shstrtab.add(p.name);
  const strtabBytes = strtab.bytes();
  const shstrtabBytes = shstrtab.bytes();
  strtabPlan.shdr.size = BigInt(strtabBytes.length);
  shstrtabPlan.shdr.size = BigInt(shstrtabBytes.length);

  // Phase 1c: file ranges, in index order, then the section header table.
  const res = new Reserver(codec.size.header);
  for (const p of planned) {
    if (p.shdr.type === SHT.NULL) continue;
    // NOBITS takes no bytes but, as gas does, gets the offset it would have had.
    if (p.shdr.type === SHT.NOBITS) p.shdr.offset = BigInt(Math.ceil(res.end / p.align) * p.align);
    else p.shdr.offset = BigInt(res.reserve(p.name, Number(p.shdr.size), p.align));
  }
  const shoff = res.reserve("section headers", planned.length * codec.size.shdr, 8);

  // Phase 2: write, in reservation order.
  const out = new Uint8Array(res.end);
  const dv = new DataView(out.buffer);
  const ident = new Uint8Array(EI.NIDENT);
  ident.set(ELFMAG, 0);
  ident[EI.CLASS] = 2;
  ident[EI.DATA] = 1;
  ident[EI.VERSION] = EV_CURRENT;
  ident[EI.OSABI] = spec.osabi ?? 0;
  codec.writeHeader(dv, 0, {
    ident,
    type: ET.REL,
    machine: spec.machine ?? EM.X86_64,
    version: EV_CURRENT,
    entry: 0n,
    phoff: 0n,
    shoff: BigInt(shoff),
    flags: spec.flags ?? 0,
    ehsize: codec.size.header,
    phentsize: 0,
    phnum: 0,
    shentsize: codec.size.shdr,
    shnum: planned.length,
    shstrndx: planned.length - 1,
  });
  const em = new Emitter(out, dv, res.ranges);
  for (const p of planned) {
    if (p.shdr.type === SHT.NULL || p.shdr.type === SHT.NOBITS) continue;
    const size = Number(p.shdr.size);
    if (p === symtabPlan) {
      em.write(p.name, size, (at) => {
        rawSyms.forEach((s, k) => {
          codec.writeSym(dv, at + (k + 1) * codec.size.sym, s);
        });
      });
    } else if (p === strtabPlan) {
      em.write(p.name, size, (at) => out.set(strtabBytes, at));
    } else if (p === shstrtabPlan) {
      em.write(p.name, size, (at) => out.set(shstrtabBytes, at));
    } else if (relaData.has(p.name) && p.shdr.type === SHT.RELA && p.contents === undefined) {
      em.write(p.name, size, (at) => {
        relaData.get(p.name)!.forEach((r, k) => {
          codec.writeRela(dv, at + k * codec.size.rela, r);
        });
      });
    } else {
      const data = p.contents!();
      em.write(p.name, data.length, (at) => out.set(data, at));
    }
  }
  em.write("section headers", planned.length * codec.size.shdr, (at) => {
    planned.forEach((p, i) => {
      codec.writeShdr(dv, at + i * codec.size.shdr, p.shdr);
    });
  });
  em.done();
  return out;
}

function rawShdr(type: number, flags: bigint, align: number): RawShdr {
  return {
    name: 0,
    type,
    flags,
    addr: 0n,
    offset: 0n,
    size: 0n,
    link: 0,
    info: 0,
    addralign: type === SHT.NULL ? 0n : BigInt(align),
    entsize: 0n,
  };
}

/** `file` followed by `extra` in a new buffer (SPEC §9: signatures are appended after the ELF). */
export function appendBytes(file: Uint8Array, extra: Uint8Array): Uint8Array {
  const out = new Uint8Array(file.length + extra.length);
  out.set(file, 0);
  out.set(extra, file.length);
  return out;
}
