/**
 * `readPayload`: bytes → {@link Payload}, with every SPEC §2 check that needs
 * no process. The ELF reader checks the container (header fields it reads,
 * section table, string tables, symbol tables); this file checks what makes an
 * ELF object a payload: header values, section kinds, notes, the funcs array
 * of either format, hooks, `.xsplice.symbols` and `.modinfo`. Every failure
 * is an `XspliceError` naming the section, entry and file offset.
 */

import { MACHINES } from "../arch/machines.ts";
import { ET, SHF, SHT } from "../elf/defs.ts";
import { type ElfFile, type ElfSymbol, parseNotes, type Rela, readElf, type Section } from "../elf/index.ts";
import { type ErrorLocation, XspliceError } from "../errors.ts";
import { hex } from "../hex.ts";
import { LIVEPATCH_FUNC, XSPLICE_FUNC, XSPLICE_SYMBOL } from "./abi.ts";
import { splitSignature } from "./signature.ts";
import {
  type HookRef,
  type Hooks,
  type PatchFunc,
  type Payload,
  type PayloadFormat,
  SINGLE_HOOKS,
  type SingleHook,
  type SymbolRef,
  type TargetSymbol,
} from "./types.ts";
/** Limits of `readPayload` (SPEC §2: both configurable). */
export interface ReadPayloadOptions {
  /** Largest accepted file, in bytes (default 16 MiB). */
  maxSize?: number;
  /** Most sections accepted (default 65,535: no extended section numbering). */
  maxSections?: number;
}

/** Default size limit of a payload file (SPEC §2). */
export const DEFAULT_MAX_PAYLOAD_SIZE = 16 * 1024 * 1024;
/** Default section count limit (SPEC §2). */
export const DEFAULT_MAX_SECTIONS = 65535;

/** Size of a native `struct xsplice_patch_func` (SPEC §1). */
export const XSPLICE_FUNC_SIZE = XSPLICE_FUNC.size;
/** Size of Xen's `struct livepatch_func` version 2 (SPEC §1). */
export const LIVEPATCH_FUNC_SIZE = LIVEPATCH_FUNC.size;
/** Size of one `struct xsplice_symbol { unsigned long addr; const char *name; }`. */
export const XSPLICE_SYMBOL_SIZE = XSPLICE_SYMBOL.size;
/** The only livepatch entry version xsplice reads. */
export const LIVEPATCH_VERSION = 2;
/** Most bytes a NOP entry may cover (and most expectation bytes): Xen's limit, SPEC §2. */
export const MAX_NOP_BYTES = 31;

/** OS/ABI values accepted (SPEC §2): ELFOSABI_NONE (System V) and ELFOSABI_GNU (what ld writes with IFUNCs). */
const OSABI_OK = new Set([0, 3]);

/** Section names of each format (SPEC §1). */
const NAMES: Record<PayloadFormat, { funcs: string; target: string; depends: string; hooks: string }> = {
  xsplice: {
    funcs: ".xsplice.funcs",
    target: ".xsplice.target",
    depends: ".xsplice.depends",
    hooks: ".xsplice.hooks.",
  },
  livepatch: {
    funcs: ".livepatch.funcs",
    target: ".livepatch.xen_depends",
    depends: ".livepatch.depends",
    hooks: ".livepatch.hooks.",
  },
};

/** The target-symbol section; one name for both formats (Xen has no such section). */
const SYMBOLS_SECTION = ".xsplice.symbols";
const BUILD_ID_SECTION = ".note.gnu.build-id";
/** Longest build-id accepted: generous for sha1 (20), md5/uuid (16), sha256 (32). */
const MAX_BUILD_ID = 64;

function fail(errno: "EINVAL" | "EOPNOTSUPP", message: string, where: ErrorLocation = {}): never {
  throw new XspliceError(errno, message, where);
}

function at(section: Section, offset = 0): ErrorLocation {
  return { section: section.name, offset: section.offset + offset };
}

/**
 * Header values the ELF reader accepts but a payload may not have (SPEC §2),
 * read straight from the bytes so that they are reported before the reader
 * walks tables that a payload should not have (program headers) or too many
 * sections. Short files, bad magic, class and byte order are left to the
 * reader, which reports them with the right errno.
 */
function checkHeader(bytes: Uint8Array, maxSections: number): void {
  if (bytes.length < 64 || bytes[0] !== 0x7f || bytes[1] !== 0x45 || bytes[2] !== 0x4c || bytes[3] !== 0x46)
    return;
  if (bytes[4] !== 2 || bytes[5] !== 1) return;
  const dv = new DataView(bytes.buffer, bytes.byteOffset, 64);
  const osabi = bytes[7] ?? 0;
  const type = dv.getUint16(0x10, true);
  const machine = dv.getUint16(0x12, true);
  const version = dv.getUint32(0x14, true);
  const phnum = dv.getUint16(0x38, true);
  const shnum = dv.getUint16(0x3c, true);
  if (bytes[6] !== 1 || version !== 1) {
    fail("EOPNOTSUPP", `ELF version ${bytes[6] === 1 ? version : bytes[6]} is not 1 (EV_CURRENT)`, {
      offset: bytes[6] === 1 ? 0x14 : 6,
    });
  }
  if (type !== ET.REL) fail("EOPNOTSUPP", `e_type ${type} is not ET_REL (1)`, { offset: 0x10 });
  if (MACHINES[machine] === undefined) {
    fail("EOPNOTSUPP", `e_machine ${machine} is neither EM_X86_64 (62) nor EM_AARCH64 (183)`, {
      offset: 0x12,
    });
  }
  if (!OSABI_OK.has(osabi))
    fail("EOPNOTSUPP", `OS/ABI ${osabi} is neither System V (0) nor GNU (3)`, { offset: 7 });
  if (phnum !== 0) fail("EOPNOTSUPP", `${phnum} program headers in a relocatable payload`, { offset: 0x38 });
  if (shnum > maxSections) {
    fail("EOPNOTSUPP", `${shnum} sections, more than the limit of ${maxSections}`, { offset: 0x3c });
  }
}

function isPowerOfTwo(v: bigint): boolean {
  return v === 0n || (v & (v - 1n)) === 0n;
}

/** Section-level checks of SPEC §2 that the ELF reader leaves to the payload reader. */
function checkSections(elf: ElfFile): Section {
  let symtab: Section | undefined;
  for (const s of elf.sections) {
    if (s.index === 0) continue;
    const where = at(s);
    if (!isPowerOfTwo(s.addralign)) {
      fail("EOPNOTSUPP", `section ${s.name} alignment ${s.addralign} is not a power of two`, where);
    }
    if ((s.flags & BigInt(SHF.WRITE)) !== 0n && (s.flags & BigInt(SHF.EXECINSTR)) !== 0n) {
      fail("EOPNOTSUPP", `section ${s.name} is both writable and executable`, where);
    }
    if (s.type === SHT.REL) fail("EOPNOTSUPP", `section ${s.name} is SHT_REL; payloads use RELA only`, where);
    // New thread-locals cannot be added to threads that already exist.
    if ((s.flags & BigInt(SHF.TLS)) !== 0n || /^\.t(data|bss)(\.|$)/.test(s.name)) {
      fail("EOPNOTSUPP", `section ${s.name} holds thread-local data`, where);
    }
    if (s.type === SHT.SYMTAB) {
      if (symtab !== undefined) fail("EINVAL", `two symbol tables: ${symtab.name} and ${s.name}`, where);
      symtab = s;
    }
  }
  if (symtab === undefined) fail("EINVAL", "no symbol table (SHT_SYMTAB)");
  for (const rs of elf.relocationSections()) {
    if (rs.symtab !== symtab.index) {
      fail(
        "EINVAL",
        `${rs.section.name} sh_link ${rs.symtab} is not the symbol table [${symtab.index}]`,
        at(rs.section),
      );
    }
  }
  for (const sym of elf.symbols()) {
    if (sym.section.kind === "common") {
      fail("EINVAL", `COMMON symbol ${sym.name} (build with -fno-common)`, { symbol: sym.name });
    }
  }
  return symtab;
}

/** Which format the section names say; mixing the two families is refused. */
function formatOf(elf: ElfFile): PayloadFormat {
  let xsplice: Section | undefined;
  let livepatch: Section | undefined;
  for (const s of elf.sections) {
    if (s.name.startsWith(".xsplice.") && s.name !== SYMBOLS_SECTION) xsplice ??= s;
    if (s.name.startsWith(".livepatch.")) livepatch ??= s;
  }
  if (xsplice !== undefined && livepatch !== undefined) {
    fail("EINVAL", `payload mixes ${xsplice.name} and ${livepatch.name} sections`, at(livepatch));
  }
  return livepatch !== undefined ? "livepatch" : "xsplice";
}

/** The one section called `name`, or undefined; a second one is refused, as it would be silently ignored. */
function uniqueSection(elf: ElfFile, name: string): Section | undefined {
  let found: Section | undefined;
  for (const s of elf.sections) {
    if (s.name !== name) continue;
    if (found !== undefined)
      fail("EINVAL", `two ${name} sections ([${found.index}] and [${s.index}])`, at(s));
    found = s;
  }
  // SHT_NOBITS (or SHT_NULL) sections have a size but no bytes in the file.
  if (found !== undefined && found.size > 0 && found.data().length !== found.size) {
    fail("EINVAL", `section ${name} (type ${found.type}) has no file data`, at(found));
  }
  return found;
}

/** A build-id note section: exactly one GNU note of type NT_GNU_BUILD_ID with a 1–64 byte id. */
function readBuildIdNote(elf: ElfFile, name: string): Uint8Array {
  const s = uniqueSection(elf, name);
  if (s === undefined) fail("EINVAL", `missing ${name} note`, { section: name });
  if (s.size === 0) fail("EINVAL", `empty ${name} note`, at(s));
  // Xen-style payloads add these notes with `objcopy --add-section`, which makes
  // them SHT_PROGBITS; the ELF reader's notes() takes SHT_NOTE only.
  const notes = s.type === SHT.NOTE ? elf.notes(s) : parseNotes(elf.bytes, s.offset, s.size, 4, name);
  const note = notes[0];
  if (notes.length !== 1 || note === undefined) {
    fail("EINVAL", `${name} holds ${notes.length} notes, expected one build-id`, at(s));
  }
  if (note.name !== "GNU" || note.type !== 3) {
    fail(
      "EINVAL",
      `${name} note is ${JSON.stringify(note.name)} type ${note.type}, not GNU build-id (3)`,
      at(s),
    );
  }
  if (note.desc.length === 0 || note.desc.length > MAX_BUILD_ID) {
    fail("EINVAL", `${name} build-id is ${note.desc.length} bytes (1-${MAX_BUILD_ID})`, at(s));
  }
  return note.desc;
}

/**
 * The relocations that fill pointer fields of a payload section (funcs, hooks,
 * symbols), by offset. Each must be the machine's 64-bit absolute type at an
 * offset inside the section; two at one offset are refused.
 */
function pointerRelocations(elf: ElfFile, s: Section, abs64: number): Map<number, Rela> {
  const out = new Map<number, Rela>();
  for (const rs of elf.relocationSections()) {
    if (rs.target !== s.index) continue;
    for (const [i, r] of rs.relocations.entries()) {
      const where = at(rs.section, i * 24);
      if (r.offset > BigInt(s.size) - 8n) {
        fail("EINVAL", `${rs.section.name} relocation ${i} at ${hex(r.offset)} is outside ${s.name}`, where);
      }
      const off = Number(r.offset);
      if (r.type !== abs64) {
        fail(
          "EINVAL",
          `${rs.section.name} relocation ${i} at ${hex(off)} is type ${r.type}, not a 64-bit pointer`,
          where,
        );
      }
      if (out.has(off)) fail("EINVAL", `${rs.section.name}: two relocations at ${hex(off)}`, where);
      out.set(off, r);
    }
  }
  return out;
}

/** What a pointer field's relocation refers to. */
function symbolRef(symbols: readonly ElfSymbol[], r: Rela, what: string, where: ErrorLocation): SymbolRef {
  const symbol = symbols[r.symbol];
  if (symbol === undefined)
    fail("EINVAL", `${what}: relocation names symbol ${r.symbol}, past the table`, where);
  return { symbol, addend: r.addend };
}

/** The NUL-terminated string a name pointer's relocation points at, inside the payload. */
function pointedString(elf: ElfFile, ref: SymbolRef, what: string, where: ErrorLocation): string {
  const { symbol, addend } = ref;
  if (symbol.section.kind !== "section") {
    fail("EINVAL", `${what} points to ${symbol.name || "a symbol"} outside the payload`, where);
  }
  const s = elf.section(symbol.section.index);
  const data = s.data();
  if (data.length !== s.size || (s.flags & BigInt(SHF.ALLOC)) === 0n) {
    fail("EINVAL", `${what} points into ${s.name}, a section without loaded data`, where);
  }
  const start = symbol.value + addend;
  if (start < 0n || start >= BigInt(s.size)) {
    fail("EINVAL", `${what} points to ${hex(start)}, outside ${s.name} (${hex(s.size)} bytes)`, where);
  }
  const from = Number(start);
  const end = data.indexOf(0, from);
  if (end < 0) fail("EINVAL", `${what} in ${s.name} at ${hex(from)} is not NUL-terminated`, where);
  return new TextDecoder().decode(data.subarray(from, end));
}

interface FuncsContext {
  elf: ElfFile;
  symbols: readonly ElfSymbol[];
  section: Section;
  relocs: Map<number, Rela>;
  minPatch: number;
}

/** Layout of one entry: where the pointer fields are, and how to read the rest. */
interface EntryLayout {
  size: number;
  /** Offset of the `name` pointer: one of the two fields that may carry a relocation. */
  nameField: number;
  /** Offset of `new_addr`, the other. */
  newAddrField: number;
  /** Read the plain fields, checking the format's fixed bytes (pad, version, expectation). */
  read(
    dv: DataView,
    base: number,
    where: ErrorLocation,
    label: string,
  ): {
    oldAddr: bigint;
    oldSize: bigint;
    newSize: bigint;
    newAddr: bigint;
    name: bigint;
    expect?: Uint8Array;
  };
}

function zeroRange(dv: DataView, from: number, to: number): number | undefined {
  for (let i = from; i < to; i++) if (dv.getUint8(i) !== 0) return i;
  return undefined;
}

/** Native `struct xsplice_patch_func` (SPEC §1). */
const XSPLICE_LAYOUT: EntryLayout = {
  size: XSPLICE_FUNC.size,
  nameField: XSPLICE_FUNC.name,
  newAddrField: XSPLICE_FUNC.newAddr,
  read(dv, base, where, label) {
    const nz = zeroRange(dv, base + XSPLICE_FUNC.pad, base + XSPLICE_FUNC.size);
    if (nz !== undefined)
      fail("EINVAL", `${label}: pad byte ${nz - base - XSPLICE_FUNC.pad} is not zero`, where);
    return {
      newAddr: dv.getBigUint64(base + XSPLICE_FUNC.newAddr, true),
      newSize: dv.getBigUint64(base + XSPLICE_FUNC.newSize, true),
      oldAddr: dv.getBigUint64(base + XSPLICE_FUNC.oldAddr, true),
      oldSize: dv.getBigUint64(base + XSPLICE_FUNC.oldSize, true),
      name: dv.getBigUint64(base + XSPLICE_FUNC.name, true),
    };
  },
};

/** Xen's `struct livepatch_func` version 2 (SPEC §1 compatibility). */
const LIVEPATCH_LAYOUT: EntryLayout = {
  size: LIVEPATCH_FUNC.size,
  nameField: LIVEPATCH_FUNC.name,
  newAddrField: LIVEPATCH_FUNC.newAddr,
  read(dv, base, where, label) {
    const version = dv.getUint8(base + LIVEPATCH_FUNC.version);
    if (version !== LIVEPATCH_VERSION) {
      fail(
        "EOPNOTSUPP",
        `${label}: livepatch_func version ${version}, only ${LIVEPATCH_VERSION} is supported`,
        where,
      );
    }
    // opaque, applied and padding: the hypervisor's scratch space, zero in a file.
    const nz = zeroRange(dv, base + LIVEPATCH_FUNC.opaque, base + LIVEPATCH_FUNC.expectCtl);
    if (nz !== undefined)
      fail("EINVAL", `${label}: byte ${nz - base} (opaque/applied/padding) is not zero`, where);
    const ctl = dv.getUint8(base + LIVEPATCH_FUNC.expectCtl);
    if ((ctl & 0xc0) !== 0) fail("EINVAL", `${label}: expectation reserved bits set (${hex(ctl)})`, where);
    const len = (ctl >> 1) & 0x1f;
    const enabled = (ctl & 1) !== 0;
    if (enabled && len === 0) fail("EINVAL", `${label}: expectation enabled with length 0`, where);
    if (len > MAX_NOP_BYTES) fail("EINVAL", `${label}: expectation length ${len} > ${MAX_NOP_BYTES}`, where);
    const fields = {
      name: dv.getBigUint64(base + LIVEPATCH_FUNC.name, true),
      newAddr: dv.getBigUint64(base + LIVEPATCH_FUNC.newAddr, true),
      oldAddr: dv.getBigUint64(base + LIVEPATCH_FUNC.oldAddr, true),
      newSize: BigInt(dv.getUint32(base + LIVEPATCH_FUNC.newSize, true)),
      oldSize: BigInt(dv.getUint32(base + LIVEPATCH_FUNC.oldSize, true)),
    };
    if (!enabled) return fields;
    const bytes = new Uint8Array(dv.buffer, dv.byteOffset + base + LIVEPATCH_FUNC.expectBytes, len);
    return { ...fields, expect: Uint8Array.from(bytes) };
  },
};

/** Read and check every entry of the funcs section (SPEC §2 "functions"). */
function readFuncs(ctx: FuncsContext, layout: EntryLayout): PatchFunc[] {
  const { elf, symbols, section: s, relocs, minPatch } = ctx;
  if (s.size % layout.size !== 0) {
    fail("EINVAL", `${s.name} size ${s.size} is not a multiple of the ${layout.size}-byte entry`, at(s));
  }
  const data = s.data();
  const dv = new DataView(data.buffer, data.byteOffset, data.byteLength);
  for (const off of relocs.keys()) {
    const field = off % layout.size;
    if (field !== layout.nameField && field !== layout.newAddrField) {
      const label = `${s.name} entry ${Math.floor(off / layout.size)}`;
      fail("EINVAL", `${label}: unexpected relocation at field offset ${field}`, at(s, off));
    }
  }
  const funcs: PatchFunc[] = [];
  const byName = new Map<string, number>();
  const byAddr = new Map<bigint, number>();
  for (let index = 0; index * layout.size < s.size; index++) {
    const base = index * layout.size;
    const label = `${s.name} entry ${index} (offset ${hex(base)})`;
    const where = at(s, base);
    const raw = layout.read(dv, base, where, label);

    let name = "";
    const nameRel = relocs.get(base + layout.nameField);
    if (nameRel !== undefined) {
      const ref = symbolRef(symbols, nameRel, `${label} name`, where);
      name = pointedString(elf, ref, `${label} name`, where);
    } else if (raw.name !== 0n) {
      fail("EINVAL", `${label}: name is ${hex(raw.name)} without a relocation`, where);
    }
    const newRel = relocs.get(base + layout.newAddrField);
    const newSymbol =
      newRel === undefined ? undefined : symbolRef(symbols, newRel, `${label} new_addr`, where);
    if (newRel === undefined && raw.newAddr !== 0n) {
      fail("EINVAL", `${label}: new_addr is ${hex(raw.newAddr)} without a relocation`, where);
    }
    const nop = newSymbol === undefined;
    const shown = name || hex(raw.oldAddr);

    if (raw.oldAddr === 0n && name === "")
      fail("EINVAL", `${label}: neither old_addr nor name is given`, where);
    if (raw.oldSize === 0n) fail("EINVAL", `${label} (${shown}): old_size is 0`, where);
    // Sizes are u32 in the livepatch entry; no function is 4 GiB long in either format.
    for (const [field, v] of [
      ["old_size", raw.oldSize],
      ["new_size", raw.newSize],
    ] as const) {
      if (v > 0xffffffffn) fail("EINVAL", `${label} (${shown}): ${field} ${hex(v)} is too large`, where);
    }
    const oldSize = Number(raw.oldSize);
    const newSize = Number(raw.newSize);
    if (nop) {
      if (newSize === 0) fail("EINVAL", `${label} (${shown}): NOP entry with new_size 0`, where);
      if (newSize > MAX_NOP_BYTES) {
        fail("EOPNOTSUPP", `${label} (${shown}): NOP of ${newSize} bytes, more than ${MAX_NOP_BYTES}`, where);
      }
      if (newSize > oldSize) {
        fail("EINVAL", `${label} (${shown}): NOP of ${newSize} bytes exceeds old_size ${oldSize}`, where);
      }
    } else if (oldSize < minPatch) {
      fail(
        "EINVAL",
        `${label} (${shown}): old_size ${oldSize} is smaller than a ${minPatch}-byte jump`,
        where,
      );
    }
    if (raw.expect !== undefined && raw.expect.length > oldSize) {
      fail(
        "EINVAL",
        `${label} (${shown}): ${raw.expect.length} expected bytes exceed old_size ${oldSize}`,
        where,
      );
    }
    const dupe =
      (name !== "" ? byName.get(name) : undefined) ??
      (raw.oldAddr !== 0n ? byAddr.get(raw.oldAddr) : undefined);
    if (dupe !== undefined) fail("EINVAL", `${label} (${shown}): same old function as entry ${dupe}`, where);
    if (name !== "") byName.set(name, index);
    if (raw.oldAddr !== 0n) byAddr.set(raw.oldAddr, index);

    const func: PatchFunc = { index, name, oldAddr: raw.oldAddr, oldSize, newSize, nop, entryOffset: base };
    if (newSymbol !== undefined) func.newSymbol = newSymbol;
    if (raw.expect !== undefined) func.expect = raw.expect;
    funcs.push(func);
  }
  return funcs;
}

/** Every hook section of the format (SPEC §1, §7). */
function readHooks(elf: ElfFile, symbols: readonly ElfSymbol[], prefix: string, abs64: number): Hooks {
  const hooks: Hooks = { load: [], unload: [] };
  const singles = new Set<string>(SINGLE_HOOKS);
  for (const s of elf.sections) {
    if (!s.name.startsWith(prefix)) continue;
    const kind = s.name.slice(prefix.length);
    if (kind !== "load" && kind !== "unload" && !singles.has(kind)) {
      fail("EINVAL", `unknown hook section ${s.name}`, at(s));
    }
    uniqueSection(elf, s.name);
    if (kind === "load" || kind === "unload") {
      if (s.size % 8 !== 0) fail("EINVAL", `${s.name} size ${s.size} is not a multiple of 8`, at(s));
    } else if (s.size !== 8) {
      fail("EINVAL", `${s.name} size ${s.size} is not one 8-byte pointer`, at(s));
    }
    const relocs = pointerRelocations(elf, s, abs64);
    const refs: HookRef[] = [];
    for (let off = 0; off < s.size; off += 8) {
      const r = relocs.get(off);
      if (r === undefined)
        fail("EINVAL", `${s.name} hook ${off / 8} has no relocation (NULL hook)`, at(s, off));
      refs.push(symbolRef(symbols, r, `${s.name} hook ${off / 8}`, at(s, off)));
    }
    for (const off of relocs.keys()) {
      if (off % 8 !== 0) fail("EINVAL", `${s.name}: relocation at unaligned offset ${hex(off)}`, at(s, off));
    }
    if (kind === "load" || kind === "unload") hooks[kind] = refs;
    else hooks[kind as SingleHook] = refs[0];
  }
  return hooks;
}

function hasHooks(h: Hooks): boolean {
  return h.load.length > 0 || h.unload.length > 0 || SINGLE_HOOKS.some((k) => h[k] !== undefined);
}

/** `.xsplice.symbols`: link-time addresses of target symbols (SPEC §1). */
function readTargetSymbols(elf: ElfFile, symbols: readonly ElfSymbol[], abs64: number): TargetSymbol[] {
  const s = uniqueSection(elf, SYMBOLS_SECTION);
  if (s === undefined) return [];
  if (s.size % XSPLICE_SYMBOL_SIZE !== 0) {
    fail("EINVAL", `${s.name} size ${s.size} is not a multiple of ${XSPLICE_SYMBOL_SIZE}`, at(s));
  }
  const relocs = pointerRelocations(elf, s, abs64);
  for (const off of relocs.keys()) {
    if (off % XSPLICE_SYMBOL_SIZE !== 8) {
      fail(
        "EINVAL",
        `${s.name} entry ${Math.floor(off / XSPLICE_SYMBOL_SIZE)}: unexpected relocation at ${hex(off)}`,
        at(s, off),
      );
    }
  }
  const data = s.data();
  const dv = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const out: TargetSymbol[] = [];
  for (let base = 0; base < s.size; base += XSPLICE_SYMBOL_SIZE) {
    const label = `${s.name} entry ${base / XSPLICE_SYMBOL_SIZE} (offset ${hex(base)})`;
    const r = relocs.get(base + 8);
    if (r === undefined) fail("EINVAL", `${label}: name has no relocation`, at(s, base));
    const name = pointedString(
      elf,
      symbolRef(symbols, r, `${label} name`, at(s, base)),
      `${label} name`,
      at(s, base),
    );
    if (name === "") fail("EINVAL", `${label}: empty name`, at(s, base));
    out.push({ name, addr: dv.getBigUint64(base, true) });
  }
  return out;
}

/** `.modinfo`: `key=value\0…` (SPEC §1), NUL-terminated (SPEC §2). */
function readMetadata(elf: ElfFile): Record<string, string> {
  const s = uniqueSection(elf, ".modinfo");
  const metadata: Record<string, string> = {};
  if (s === undefined || s.size === 0) return metadata;
  const data = s.data();
  if (data[data.length - 1] !== 0) fail("EINVAL", `.modinfo is not NUL-terminated`, at(s, s.size - 1));
  const text = new TextDecoder().decode(data.subarray(0, data.length - 1));
  for (const entry of text.split("\0")) {
    if (entry === "") continue; // alignment padding between entries
    const eq = entry.indexOf("=");
    const key = eq < 0 ? entry : entry.slice(0, eq);
    const value = eq < 0 ? "" : entry.slice(eq + 1);
    const seen = Object.hasOwn(metadata, key) ? metadata[key] : undefined;
    metadata[key] = seen === undefined ? value : `${seen}\n${value}`;
  }
  return metadata;
}

/**
 * SPEC §5: writable data of the payload's own makes a reverted payload
 * impossible to re-apply. Counted: allocated writable sections with bytes
 * (`.data*`, `.bss*` and any other), except the payload's own tables
 * (`.xsplice.*`, `.livepatch.*`) and `.data.rel.ro*`, which only the loader
 * writes while relocating.
 */
function ownWritableData(elf: ElfFile): boolean {
  const alloc = BigInt(SHF.ALLOC);
  const write = BigInt(SHF.WRITE);
  return elf.sections.some(
    (s) =>
      s.size > 0 &&
      (s.flags & alloc) !== 0n &&
      (s.flags & write) !== 0n &&
      !s.name.startsWith(".xsplice.") &&
      !s.name.startsWith(".livepatch.") &&
      !s.name.startsWith(".data.rel.ro"),
  );
}

/**
 * Read a payload file (SPEC §1) and run every SPEC §2 check that needs no
 * process. A signature trailer (SPEC §9) is split off and recorded, not
 * verified. Throws `XspliceError` (EINVAL, EOPNOTSUPP, or the ELF reader's own).
 */
export function readPayload(bytes: Uint8Array, opts: ReadPayloadOptions = {}): Payload {
  const maxSize = opts.maxSize ?? DEFAULT_MAX_PAYLOAD_SIZE;
  const maxSections = opts.maxSections ?? DEFAULT_MAX_SECTIONS;
  if (bytes.length === 0) fail("EINVAL", "payload is empty");
  if (bytes.length > maxSize)
    fail("EINVAL", `payload is ${bytes.length} bytes, more than the limit of ${maxSize}`);
  const parts = splitSignature(bytes);
  const image = parts.elf;
  checkHeader(image, maxSections);
  const elf = readElf(image);
  const machine = MACHINES[elf.header.machine];
  // checkHeader saw these already for any file the reader accepts; kept so that
  // the model never holds an unsupported machine whatever the reader allows.
  if (machine === undefined || elf.header.type !== ET.REL) {
    fail("EOPNOTSUPP", `e_type ${elf.header.type} / e_machine ${elf.header.machine} is not a payload`);
  }
  if (elf.sections.length > maxSections) {
    fail("EOPNOTSUPP", `${elf.sections.length} sections, more than the limit of ${maxSections}`);
  }
  checkSections(elf);
  const format = formatOf(elf);
  const names = NAMES[format];
  const target = readBuildIdNote(elf, names.target);
  const depends = readBuildIdNote(elf, names.depends);
  const buildId = readBuildIdNote(elf, BUILD_ID_SECTION);

  const symbols = elf.symbols();
  const hooks = readHooks(elf, symbols, names.hooks, machine.abs64);
  const funcsSection = uniqueSection(elf, names.funcs);
  let funcs: PatchFunc[] = [];
  if (funcsSection !== undefined) {
    const relocs = pointerRelocations(elf, funcsSection, machine.abs64);
    const layout = format === "xsplice" ? XSPLICE_LAYOUT : LIVEPATCH_LAYOUT;
    funcs = readFuncs(
      { elf, symbols, section: funcsSection, relocs, minPatch: machine.trampolineSize },
      layout,
    );
  }
  if (funcs.length === 0 && !hasHooks(hooks)) {
    fail("EINVAL", `no ${names.funcs} entries and no hooks: the payload does nothing`, {
      section: names.funcs,
    });
  }
  const payload: Payload = {
    format,
    machine: elf.header.machine,
    elf,
    buildId,
    target,
    depends,
    funcs,
    hooks,
    metadata: readMetadata(elf),
    targetSymbols: readTargetSymbols(elf, symbols, machine.abs64),
    signed: parts.signature !== undefined,
    hasOwnWritableData: ownWritableData(elf),
  };
  if (parts.signature !== undefined) payload.signature = parts.signature;
  return payload;
}
