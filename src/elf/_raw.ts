/**
 * Raw ELF records as they sit in the file, and the one place that knows the
 * file's class and byte order (Go `debug/elf`'s `Header64`/`Section64`; Rust
 * `object`'s `FileHeader` trait). The friendly types (`Section`, `ElfSymbol`...)
 * are built from these by the parsers; the writer encodes these. Adding ELF32 or
 * big-endian means adding a second {@link RecordCodec} and picking it in
 * {@link codecFor}; nothing else switches on class or byte order.
 */
import { ELF64_SIZE } from "./defs.ts";

/** `Elf64_Ehdr` with every field as stored (`ident` is the first 16 bytes). */
export interface RawHeader {
  ident: Uint8Array;
  type: number;
  machine: number;
  version: number;
  entry: bigint;
  phoff: bigint;
  shoff: bigint;
  flags: number;
  ehsize: number;
  phentsize: number;
  phnum: number;
  shentsize: number;
  shnum: number;
  shstrndx: number;
}

/** `Elf64_Shdr` as stored. */
export interface RawShdr {
  name: number;
  type: number;
  flags: bigint;
  addr: bigint;
  offset: bigint;
  size: bigint;
  link: number;
  info: number;
  addralign: bigint;
  entsize: bigint;
}

/** `Elf64_Sym` as stored. */
export interface RawSym {
  name: number;
  info: number;
  other: number;
  shndx: number;
  value: bigint;
  size: bigint;
}

/** `Elf64_Rela` with `r_info` split into symbol and type. */
export interface RawRela {
  offset: bigint;
  sym: number;
  type: number;
  addend: bigint;
}

/** `Elf64_Phdr` as stored. */
export interface RawPhdr {
  type: number;
  flags: number;
  offset: bigint;
  vaddr: bigint;
  paddr: bigint;
  filesz: bigint;
  memsz: bigint;
  align: bigint;
}

/** Record sizes of one ELF class. */
export interface RecordSizes {
  header: number;
  shdr: number;
  sym: number;
  rela: number;
  phdr: number;
}

/** Decoding and encoding of every raw record for one (class, byte order). */
export interface RecordCodec {
  readonly elfClass: 64;
  readonly data: "lsb";
  readonly size: RecordSizes;
  readHeader(dv: DataView, off: number): RawHeader;
  writeHeader(dv: DataView, off: number, h: RawHeader): void;
  readShdr(dv: DataView, off: number): RawShdr;
  writeShdr(dv: DataView, off: number, s: RawShdr): void;
  readSym(dv: DataView, off: number): RawSym;
  writeSym(dv: DataView, off: number, s: RawSym): void;
  readRela(dv: DataView, off: number): RawRela;
  writeRela(dv: DataView, off: number, r: RawRela): void;
  readPhdr(dv: DataView, off: number): RawPhdr;
}

const LE = true;

/** ELF64 little-endian: x86-64 and arm64 Linux (SPEC §1). */
export const ELF64_LSB: RecordCodec = {
  elfClass: 64,
  data: "lsb",
  size: ELF64_SIZE,
  readHeader(dv, off) {
    return {
      ident: new Uint8Array(dv.buffer, dv.byteOffset + off, 16),
      type: dv.getUint16(off + 16, LE),
      machine: dv.getUint16(off + 18, LE),
      version: dv.getUint32(off + 20, LE),
      entry: dv.getBigUint64(off + 24, LE),
      phoff: dv.getBigUint64(off + 32, LE),
      shoff: dv.getBigUint64(off + 40, LE),
      flags: dv.getUint32(off + 48, LE),
      ehsize: dv.getUint16(off + 52, LE),
      phentsize: dv.getUint16(off + 54, LE),
      phnum: dv.getUint16(off + 56, LE),
      shentsize: dv.getUint16(off + 58, LE),
      shnum: dv.getUint16(off + 60, LE),
      shstrndx: dv.getUint16(off + 62, LE),
    };
  },
  writeHeader(dv, off, h) {
    for (let i = 0; i < 16; i++) dv.setUint8(off + i, h.ident[i] ?? 0);
    dv.setUint16(off + 16, h.type, LE);
    dv.setUint16(off + 18, h.machine, LE);
    dv.setUint32(off + 20, h.version, LE);
    dv.setBigUint64(off + 24, h.entry, LE);
    dv.setBigUint64(off + 32, h.phoff, LE);
    dv.setBigUint64(off + 40, h.shoff, LE);
    dv.setUint32(off + 48, h.flags, LE);
    dv.setUint16(off + 52, h.ehsize, LE);
    dv.setUint16(off + 54, h.phentsize, LE);
    dv.setUint16(off + 56, h.phnum, LE);
    dv.setUint16(off + 58, h.shentsize, LE);
    dv.setUint16(off + 60, h.shnum, LE);
    dv.setUint16(off + 62, h.shstrndx, LE);
  },
  readShdr(dv, off) {
    return {
      name: dv.getUint32(off, LE),
      type: dv.getUint32(off + 4, LE),
      flags: dv.getBigUint64(off + 8, LE),
      addr: dv.getBigUint64(off + 16, LE),
      offset: dv.getBigUint64(off + 24, LE),
      size: dv.getBigUint64(off + 32, LE),
      link: dv.getUint32(off + 40, LE),
      info: dv.getUint32(off + 44, LE),
      addralign: dv.getBigUint64(off + 48, LE),
      entsize: dv.getBigUint64(off + 56, LE),
    };
  },
  writeShdr(dv, off, s) {
    dv.setUint32(off, s.name, LE);
    dv.setUint32(off + 4, s.type, LE);
    dv.setBigUint64(off + 8, s.flags, LE);
    dv.setBigUint64(off + 16, s.addr, LE);
    dv.setBigUint64(off + 24, s.offset, LE);
    dv.setBigUint64(off + 32, s.size, LE);
    dv.setUint32(off + 40, s.link, LE);
    dv.setUint32(off + 44, s.info, LE);
    dv.setBigUint64(off + 48, s.addralign, LE);
    dv.setBigUint64(off + 56, s.entsize, LE);
  },
  readSym(dv, off) {
    return {
      name: dv.getUint32(off, LE),
      info: dv.getUint8(off + 4),
      other: dv.getUint8(off + 5),
      shndx: dv.getUint16(off + 6, LE),
      value: dv.getBigUint64(off + 8, LE),
      size: dv.getBigUint64(off + 16, LE),
    };
  },
  writeSym(dv, off, s) {
    dv.setUint32(off, s.name, LE);
    dv.setUint8(off + 4, s.info);
    dv.setUint8(off + 5, s.other);
    dv.setUint16(off + 6, s.shndx, LE);
    dv.setBigUint64(off + 8, s.value, LE);
    dv.setBigUint64(off + 16, s.size, LE);
  },
  readRela(dv, off) {
    // r_info = sym << 32 | type: in little-endian the low word (type) comes first.
    return {
      offset: dv.getBigUint64(off, LE),
      type: dv.getUint32(off + 8, LE),
      sym: dv.getUint32(off + 12, LE),
      addend: dv.getBigInt64(off + 16, LE),
    };
  },
  writeRela(dv, off, r) {
    dv.setBigUint64(off, r.offset, LE);
    dv.setUint32(off + 8, r.type, LE);
    dv.setUint32(off + 12, r.sym, LE);
    dv.setBigInt64(off + 16, r.addend, LE);
  },
  readPhdr(dv, off) {
    return {
      type: dv.getUint32(off, LE),
      flags: dv.getUint32(off + 4, LE),
      offset: dv.getBigUint64(off + 8, LE),
      vaddr: dv.getBigUint64(off + 16, LE),
      paddr: dv.getBigUint64(off + 24, LE),
      filesz: dv.getBigUint64(off + 32, LE),
      memsz: dv.getBigUint64(off + 40, LE),
      align: dv.getBigUint64(off + 48, LE),
    };
  },
};

/** The codec for a class/byte-order pair, or undefined when xsplice does not read it. */
export function codecFor(elfClass: number, data: number): RecordCodec | undefined {
  // ELFCLASS64 = 2, ELFDATA2LSB = 1.
  return elfClass === 2 && data === 1 ? ELF64_LSB : undefined;
}
