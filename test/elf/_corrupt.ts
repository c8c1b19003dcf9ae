/**
 * Field-level corruption of real ELF files for the malformed-input tests:
 * poke header, section header and symbol fields by name instead of by raw
 * offset, so each case reads as the corruption it makes.
 */
import { readFileSync } from "node:fs";
import { type ElfFile, readElf, type Section } from "../../src/elf/index.ts";
import { compileC } from "../helpers/cc.ts";

/** A small gcc object (PIC, one section per function). */
export function baseObject(): Uint8Array {
  return readFileSync(
    compileC({
      sources: ["elf/objects.c"],
      kind: "obj",
      flags: ["-O2", "-fPIC", "-ffunction-sections"],
      name: "elf-pic",
    }),
  );
}

/** A PIE executable with a build-id note and program headers. */
export function baseExecutable(): Uint8Array {
  return readFileSync(
    compileC({
      sources: ["elf/objects.c"],
      kind: "exe",
      flags: ["-O2", "-fPIE", "-pie", "-Wl,--build-id"],
      name: "elf-pie",
    }),
  );
}

/** Field offsets and widths in the ELF64 header and section header. */
export const EHDR = {
  phoff: [32, 8],
  shoff: [40, 8],
  phentsize: [54, 2],
  phnum: [56, 2],
  shentsize: [58, 2],
  shnum: [60, 2],
  shstrndx: [62, 2],
  version: [20, 4],
} as const;
export const SHDR = {
  name: [0, 4],
  type: [4, 4],
  offset: [24, 8],
  size: [32, 8],
  link: [40, 4],
  info: [44, 4],
  entsize: [56, 8],
} as const;

/** Write an unsigned little-endian integer of `width` bytes. */
export function put(bytes: Uint8Array, at: number, width: number, value: number | bigint): void {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (width === 1) dv.setUint8(at, Number(value));
  else if (width === 2) dv.setUint16(at, Number(value), true);
  else if (width === 4) dv.setUint32(at, Number(value), true);
  else dv.setBigUint64(at, BigInt(value), true);
}

/** A mutable copy of `base` together with the parsed original, for locating fields. */
export class Patch {
  readonly bytes: Uint8Array;
  readonly orig: ElfFile;
  constructor(base: Uint8Array) {
    this.bytes = Uint8Array.from(base);
    this.orig = readElf(base);
  }
  header(field: keyof typeof EHDR, value: number | bigint): this {
    const [at, w] = EHDR[field];
    put(this.bytes, at, w, value);
    return this;
  }
  section(which: string | ((s: Section) => boolean), field: keyof typeof SHDR, value: number | bigint): this {
    const s = this.find(which);
    const [at, w] = SHDR[field];
    put(this.bytes, s.headerOffset + at, w, value);
    return this;
  }
  find(which: string | ((s: Section) => boolean)): Section {
    const s = typeof which === "string" ? this.orig.sectionByName(which) : this.orig.sections.find(which);
    if (!s) throw new Error(`no section ${which}`);
    return s;
  }
  /** Overwrite `width` bytes at file offset `at`. */
  poke(at: number, width: number, value: number | bigint): this {
    put(this.bytes, at, width, value);
    return this;
  }
  /** Overwrite bytes inside a section's data; a negative `at` counts from the section's end. */
  inSection(
    which: string | ((s: Section) => boolean),
    at: number,
    width: number,
    value: number | bigint,
  ): this {
    const s = this.find(which);
    put(this.bytes, s.offset + (at < 0 ? s.size + at : at), width, value);
    return this;
  }
  /** Overwrite a field of symbol `index` of `.symtab` (offsets as in Elf64_Sym). */
  symbol(index: number, field: "name" | "shndx", value: number): this {
    const t = this.find(".symtab");
    const at = t.offset + index * 24 + (field === "name" ? 0 : 6);
    put(this.bytes, at, field === "name" ? 4 : 2, value);
    return this;
  }
}
