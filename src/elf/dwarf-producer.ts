/**
 * The `DW_AT_producer` strings of an object's compile units (DWARF 4 and 5),
 * for the SPEC §12 warning: a target not built with
 * `-flive-patching=inline-clone` may have callers that rely on registers the
 * old callee left alone (`-fipa-ra`), which a replacement may clobber. gcc
 * records its command-line options in the producer string when `-g` is on
 * (`-grecord-gcc-switches`, the default), so the flag shows there.
 *
 * Only the first DIE of each unit is read (the compile unit itself), and only
 * up to its producer attribute. This is a best-effort reader: anything it does
 * not understand ends the walk with a `reason`, never an exception, because a
 * missing warning must not fail an action.
 */
import { inflateSync } from "node:zlib";
import { XspliceError } from "../errors.ts";
import { Cursor } from "./_cursor.ts";
import { SHF } from "./defs.ts";
import type { ElfFile } from "./file.ts";
import type { Section } from "./section.ts";

/** What `compileUnitProducers` found. */
export interface ProducerScan {
  /** One producer string per compile unit that has one, in `.debug_info` order. */
  producers: string[];
  /** Number of units walked. */
  units: number;
  /** Why the walk stopped early or found nothing (no `.debug_info`, an unknown form, ...). */
  reason?: string;
}

const DW_AT_PRODUCER = 0x25;
export const DW_FORM = {
  addr: 0x01,
  block2: 0x03,
  block4: 0x04,
  data2: 0x05,
  data4: 0x06,
  data8: 0x07,
  string: 0x08,
  block: 0x09,
  block1: 0x0a,
  data1: 0x0b,
  flag: 0x0c,
  sdata: 0x0d,
  strp: 0x0e,
  udata: 0x0f,
  ref_addr: 0x10,
  ref1: 0x11,
  ref2: 0x12,
  ref4: 0x13,
  ref8: 0x14,
  ref_udata: 0x15,
  indirect: 0x16,
  sec_offset: 0x17,
  exprloc: 0x18,
  flag_present: 0x19,
  strx: 0x1a,
  addrx: 0x1b,
  ref_sup4: 0x1c,
  strp_sup: 0x1d,
  data16: 0x1e,
  line_strp: 0x1f,
  ref_sig8: 0x20,
  implicit_const: 0x21,
  loclistx: 0x22,
  rnglistx: 0x23,
  ref_sup8: 0x24,
  strx1: 0x25,
  strx2: 0x26,
  strx3: 0x27,
  strx4: 0x28,
  addrx1: 0x29,
  addrx2: 0x2a,
  addrx3: 0x2b,
  addrx4: 0x2c,
} as const;
/** DWARF 5 unit types with extra header fields (DWARF 5 §7.5.1). */
const DW_UT = { type: 2, skeleton: 4, split_compile: 5, split_type: 6 } as const;
const ELFCOMPRESS_ZLIB = 1;

/**
 * Thrown inside this module only; turned into `reason`, as are the cursor's
 * `EINVAL` errors (truncation, over-long LEB128).
 */
class Stop extends Error {}

/** A DWARF offset field: 4 bytes in the 32-bit format, 8 in the 64-bit one (DWARF 5 §7.4). */
export function offsetField(c: Cursor, size: 4 | 8): number {
  return size === 4 ? c.u32() : c.small(c.u64(), "64-bit offset");
}

/** A section's bytes, inflated when `SHF_COMPRESSED` with zlib (gcc `-gz`). */
export function sectionBytes(s: Section): Uint8Array {
  const raw = s.data();
  if ((s.flags & SHF.COMPRESSED) === 0n) return raw;
  const c = new Cursor(raw, 0, `${s.name} compression header`);
  const type = c.u32();
  c.skip(4); // ch_reserved
  const size = c.small(c.u64(), "ch_size");
  c.skip(8); // ch_addralign
  if (type !== ELFCOMPRESS_ZLIB) throw new Stop(`${s.name} is compressed with type ${type}, not zlib`);
  try {
    const out = inflateSync(raw.subarray(c.pos), { maxOutputLength: Math.max(size, 1) });
    return new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
  } catch {
    throw new Stop(`${s.name}: zlib data does not inflate`);
  }
}

interface AttrSpec {
  name: number;
  form: number;
}

/** The attribute list of abbreviation `code` in the table at `offset` of `.debug_abbrev`. */
function abbreviation(abbrev: Uint8Array, offset: number, code: number): AttrSpec[] {
  const c = new Cursor(abbrev, offset, ".debug_abbrev");
  for (;;) {
    const at = c.ulebNumber("abbreviation code");
    if (at === 0) throw new Stop(`abbreviation ${code} not found at .debug_abbrev+0x${offset.toString(16)}`);
    c.uleb(); // tag
    c.u8(); // has_children
    const attrs: AttrSpec[] = [];
    for (;;) {
      const name = c.ulebNumber("attribute name");
      const form = c.ulebNumber("attribute form");
      if (form === DW_FORM.implicit_const) c.skipLeb(); // the value lives in the abbreviation
      if (name === 0 && form === 0) break;
      attrs.push({ name, form });
    }
    if (at === code) return attrs;
  }
}

/** Size of a value of `form` when it does not depend on the data (no length prefix, no LEB128); undefined otherwise. */
export function fixedFormSize(form: number, offsetSize: 4 | 8, addressSize: number): number | undefined {
  const F = DW_FORM;
  switch (form) {
    case F.flag_present:
    case F.implicit_const:
      return 0;
    case F.data1:
    case F.ref1:
    case F.flag:
    case F.strx1:
    case F.addrx1:
      return 1;
    case F.data2:
    case F.ref2:
    case F.strx2:
    case F.addrx2:
      return 2;
    case F.strx3:
    case F.addrx3:
      return 3;
    case F.data4:
    case F.ref4:
    case F.ref_sup4:
    case F.strx4:
    case F.addrx4:
      return 4;
    case F.data8:
    case F.ref8:
    case F.ref_sig8:
    case F.ref_sup8:
      return 8;
    case F.data16:
      return 16;
    case F.addr:
      return addressSize;
    case F.strp:
    case F.line_strp:
    case F.sec_offset:
    case F.ref_addr:
    case F.strp_sup:
      return offsetSize;
    default:
      return undefined;
  }
}

/**
 * The size of one attribute value of `form` at the cursor, after consuming any
 * length prefix or LEB128 value itself; `Stop` for forms it cannot size.
 */
export function formSize(c: Cursor, form: number, offsetSize: 4 | 8, addressSize: number): number {
  const fixed = fixedFormSize(form, offsetSize, addressSize);
  if (fixed !== undefined) return fixed;
  const F = DW_FORM;
  switch (form) {
    case F.sdata:
      c.skipLeb();
      return 0;
    case F.udata:
    case F.ref_udata:
    case F.strx:
    case F.addrx:
    case F.loclistx:
    case F.rnglistx:
      c.skipLeb();
      return 0;
    case F.string:
      c.cstring();
      return 0;
    case F.block1:
      return c.u8();
    case F.block2:
      return c.u16();
    case F.block4:
      return c.u32();
    case F.block:
    case F.exprloc:
      return c.ulebNumber("block length");
    case F.indirect:
      return formSize(c, c.ulebNumber("indirect form"), offsetSize, addressSize);
    default:
      throw new Stop(`unknown attribute form 0x${form.toString(16)}`);
  }
}

function stringAt(table: Uint8Array | undefined, name: string, offset: number): string {
  if (!table) throw new Stop(`producer refers to ${name}, which is missing`);
  const c = new Cursor(table, offset, name);
  if (offset >= table.length) throw new Stop(`producer offset 0x${offset.toString(16)} outside ${name}`);
  return c.cstring();
}

/**
 * The producer strings of every compile unit in `elf`'s `.debug_info`.
 * Never throws: a missing section, a form it cannot read (e.g. `strx` into
 * `.debug_str_offsets`) or a truncated unit ends the walk with `reason` set,
 * keeping what was found so far.
 */
export function compileUnitProducers(elf: ElfFile): ProducerScan {
  const out: ProducerScan = { producers: [], units: 0 };
  try {
    const infoSec = elf.sectionByName(".debug_info");
    const abbrevSec = elf.sectionByName(".debug_abbrev");
    if (!infoSec || infoSec.size === 0) return { ...out, reason: "no .debug_info" };
    if (!abbrevSec) return { ...out, reason: "no .debug_abbrev" };
    const info = sectionBytes(infoSec);
    const abbrev = sectionBytes(abbrevSec);
    const strSec = elf.sectionByName(".debug_str");
    const lineStrSec = elf.sectionByName(".debug_line_str");
    const str = strSec ? sectionBytes(strSec) : undefined;
    const lineStr = lineStrSec ? sectionBytes(lineStrSec) : undefined;
    const c = new Cursor(info, 0, ".debug_info");
    while (c.pos < info.length) {
      let length = c.u32();
      let offsetSize: 4 | 8 = 4;
      if (length === 0xffffffff) {
        length = c.small(c.u64(), "unit length");
        offsetSize = 8;
      } else if (length >= 0xfffffff0) throw new Stop(`reserved unit length 0x${length.toString(16)}`);
      c.need(length);
      const unitEnd = c.pos + length;
      const u = new Cursor(info, c.pos, ".debug_info", unitEnd);
      c.pos = unitEnd;
      out.units++;
      const version = u.u16();
      let abbrevOffset: number;
      let addressSize: number;
      if (version >= 2 && version <= 4) {
        abbrevOffset = offsetField(u, offsetSize);
        addressSize = u.u8();
      } else if (version === 5) {
        const unitType = u.u8();
        addressSize = u.u8();
        abbrevOffset = offsetField(u, offsetSize);
        if (unitType === DW_UT.skeleton || unitType === DW_UT.split_compile) u.skip(8);
        else if (unitType === DW_UT.type || unitType === DW_UT.split_type) u.skip(8 + offsetSize);
      } else throw new Stop(`DWARF version ${version} not supported`);
      const code = u.ulebNumber("abbreviation code");
      if (code === 0) continue;
      for (const attr of abbreviation(abbrev, abbrevOffset, code)) {
        let form = attr.form;
        if (form === DW_FORM.indirect && attr.name === DW_AT_PRODUCER) form = u.ulebNumber("indirect form");
        if (attr.name !== DW_AT_PRODUCER) {
          u.skip(formSize(u, form, offsetSize, addressSize));
          continue;
        }
        if (form === DW_FORM.string) out.producers.push(u.cstring());
        else if (form === DW_FORM.strp)
          out.producers.push(stringAt(str, ".debug_str", offsetField(u, offsetSize)));
        else if (form === DW_FORM.line_strp)
          out.producers.push(stringAt(lineStr, ".debug_line_str", offsetField(u, offsetSize)));
        else throw new Stop(`producer in form 0x${form.toString(16)}, which this reader does not follow`);
        break;
      }
    }
  } catch (err) {
    if (err instanceof Stop || err instanceof XspliceError) return { ...out, reason: err.message };
    // Any other failure (e.g. a section view outside the file) is also only a lost warning.
    return { ...out, reason: err instanceof Error ? err.message : String(err) };
  }
  return out;
}

/** The gcc flag SPEC §12 asks live-patchable targets to be built with. */
export const LIVE_PATCHING_FLAG = "-flive-patching=inline-clone";

/**
 * The `.modinfo` entry a builder adds when every compile unit of the target it
 * built against (the build-id the payload names) carries the flag: the fact
 * travels with the payload to a target that runs stripped of its DWARF.
 */
export const LIVE_PATCHING_METADATA = `target-flags=${LIVE_PATCHING_FLAG}`;

/**
 * The SPEC §12 warning for a target object, or undefined when every compile
 * unit with a producer string says `-flive-patching=inline-clone` (or
 * `-flive-patching`, whose default is inline-clone). `what` names the object
 * in the message.
 */
export function livePatchingWarning(elf: ElfFile, what: string): string | undefined {
  const scan = compileUnitProducers(elf);
  // Assembler units (crt files, .S sources) record no compiler flags and have no callers to protect.
  const compiled = scan.producers.filter((p) => !/^GNU AS\b/.test(p));
  if (compiled.length === 0)
    return `${what} has no DWARF producer strings of a compiler (${scan.reason ?? "none recorded"}): cannot tell whether it was built with ${LIVE_PATCHING_FLAG}; its callers may rely on registers a replacement clobbers`;
  const lacking = compiled.filter((p) => !/(^|\s)-flive-patching(=inline-clone)?(\s|$)/.test(p));
  if (lacking.length === 0) return undefined;
  return `${what} was not built with ${LIVE_PATCHING_FLAG} (${lacking.length} of ${compiled.length} compile units lack it, e.g. "${lacking[0]!.slice(0, 80)}"): its callers may rely on registers a replacement clobbers (SPEC §12)`;
}
