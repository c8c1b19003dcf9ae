/**
 * Which functions of an object were inlined into which (SPEC §13), from its
 * DWARF: a `DW_TAG_inlined_subroutine` inside a concrete function names, by
 * `DW_AT_abstract_origin`, the function whose copy it is. `diff` needs this
 * for one report: a changed function the compiler inlined into every caller
 * has no symbol, so no byte of the object names it; its callers change and
 * are patched, and the user is told that this is how the fix got in.
 *
 * Best effort, like the producer reader it shares its DWARF forms with: an
 * object without `.debug_info`, or with a form this walk cannot step over,
 * yields what was found so far; the report is then just less precise, the
 * payload is the same.
 */
import { Cursor } from "../../elf/_cursor.ts";
import { DW_FORM, fixedFormSize, formSize, offsetField, sectionBytes } from "../../elf/dwarf-producer.ts";
import type { ObjectView } from "./object.ts";

const DW_TAG = { subprogram: 0x2e, inlined_subroutine: 0x1d } as const;
const DW_AT = {
  name: 0x03,
  low_pc: 0x11,
  ranges: 0x55,
  inline: 0x20,
  abstract_origin: 0x31,
  specification: 0x47,
} as const;

interface Abbrev {
  tag: number;
  children: boolean;
  attrs: { name: number; form: number }[];
  /** Size of the whole DIE after its code when every form has a fixed size (per unit's sizes); the fast skip. */
  fixed?: number;
}

/** An unsigned LEB128 that fits a `number` (codes, tags), without the cursor's BigInt: this loop runs per DIE. */
function uleb(u: Cursor): number {
  let result = 0;
  let mul = 1;
  for (;;) {
    if (u.pos >= u.end) throw u.fail("truncated LEB128");
    const b = u.bytes[u.pos++]!;
    result += (b & 0x7f) * mul;
    if ((b & 0x80) === 0) return result;
    mul *= 128;
    if (mul > 2 ** 49) throw u.fail("LEB128 too long");
  }
}

/** Every abbreviation of the table at `offset`, by code. */
function abbreviations(bytes: Uint8Array, offset: number): Map<number, Abbrev> {
  const out = new Map<number, Abbrev>();
  const c = new Cursor(bytes, offset, ".debug_abbrev");
  for (;;) {
    const code = c.ulebNumber("abbreviation code");
    if (code === 0) return out;
    const tag = c.ulebNumber("tag");
    const children = c.u8() !== 0;
    const attrs: Abbrev["attrs"] = [];
    for (;;) {
      const name = c.ulebNumber("attribute name");
      const form = c.ulebNumber("attribute form");
      if (form === DW_FORM.implicit_const) c.skipLeb();
      if (name === 0 && form === 0) break;
      attrs.push({ name, form });
    }
    out.set(code, { tag, children, attrs });
  }
}

/** One DIE of interest: a subprogram (abstract or concrete) or an inlined copy. */
interface Die {
  tag: number;
  name?: string;
  /** Where its `DW_FORM_strp` name's offset field is (decoded only when asked: most are never needed). */
  strpField?: number;
  /** Absolute `.debug_info` offset of the DIE it is an instance or completion of. */
  origin?: number;
  /** Has code of its own (`DW_AT_low_pc` or `DW_AT_ranges`). */
  concrete: boolean;
  /** For an inlined copy: the outermost concrete subprogram that holds it. */
  container?: number;
}

/** `inlinedInto(view)`: for each function inlined somewhere, the functions holding a copy (by DWARF name). */
export function inlinedInto(view: ObjectView): Map<string, Set<string>> {
  const dies = new Map<number, Die>();
  let strName: (d: Die) => string | undefined = () => undefined;
  try {
    strName = walk(view, dies);
  } catch {
    // Best effort (see above): keep what was read.
  }
  const nameOf = (at: number | undefined, depth = 0): string | undefined => {
    const d = at === undefined ? undefined : dies.get(at);
    if (d === undefined || depth > 8) return undefined;
    if (d.name === undefined && d.strpField !== undefined) d.name = strName(d);
    return d.name ?? nameOf(d.origin, depth + 1);
  };
  const out = new Map<string, Set<string>>();
  for (const d of dies.values()) {
    if (d.tag !== DW_TAG.inlined_subroutine) continue;
    const callee = nameOf(d.origin);
    const caller = nameOf(d.container);
    if (callee === undefined || caller === undefined) continue;
    const set = out.get(callee);
    if (set) set.add(caller);
    else out.set(callee, new Set([caller]));
  }
  return out;
}

/** Fill `dies`; returns how to read a DIE's `DW_FORM_strp` name. */
function walk(view: ObjectView, dies: Map<number, Die>): (d: Die) => string | undefined {
  const none = () => undefined;
  const elf = view.elf;
  const infoSec = elf.sectionByName(".debug_info");
  const abbrevSec = elf.sectionByName(".debug_abbrev");
  if (!infoSec || !abbrevSec) return none;
  const info = sectionBytes(infoSec);
  const abbrev = sectionBytes(abbrevSec);
  const strSec = elf.sectionByName(".debug_str");
  const str = strSec ? sectionBytes(strSec) : undefined;
  // In a relocatable object, a DW_FORM_strp field is 0 plus a relocation
  // against .debug_str: the offset is the relocation's symbol value + addend.
  const relocs = view.relocations(infoSec.index); // by offset
  const strpBase = (field: number): number => {
    const want = BigInt(field);
    let lo = 0;
    let hi = relocs.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const r = relocs[mid]!;
      if (r.offset === want) return Number((view.symbols[r.symbol]?.value ?? 0n) + r.addend);
      if (r.offset < want) lo = mid + 1;
      else hi = mid - 1;
    }
    return 0;
  };
  const strName = (d: Die): string | undefined => {
    if (str === undefined || d.strpField === undefined) return undefined;
    try {
      const off = strpBase(d.strpField) + new Cursor(info, d.strpField, ".debug_info").u32();
      return off < str.length ? new Cursor(str, off, ".debug_str").cstring() : undefined;
    } catch {
      return undefined;
    }
  };
  const tables = new Map<string, Map<number, Abbrev>>();
  const c = new Cursor(info, 0, ".debug_info");
  while (c.pos < info.length) {
    let length = c.u32();
    let offsetSize: 4 | 8 = 4;
    if (length === 0xffffffff) {
      length = c.small(c.u64(), "unit length");
      offsetSize = 8;
    }
    const unitStart = c.pos - (offsetSize === 4 ? 4 : 12);
    c.need(length);
    const unitEnd = c.pos + length;
    const u = new Cursor(info, c.pos, ".debug_info", unitEnd);
    c.pos = unitEnd;
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
      if (unitType !== 1) continue; // only full compile units describe this object's functions
    } else return strName;
    const tableKey = `${abbrevOffset}/${offsetSize}/${addressSize}`;
    let table = tables.get(tableKey);
    if (table === undefined) {
      table = abbreviations(abbrev, abbrevOffset);
      for (const a of table.values()) {
        let size: number | undefined = 0;
        for (const attr of a.attrs) {
          const f = fixedFormSize(attr.form, offsetSize, addressSize);
          size = f === undefined || size === undefined ? undefined : size + f;
        }
        if (size !== undefined) a.fixed = size;
      }
      tables.set(tableKey, table);
    }
    // Stack of open DIEs with children; the outermost concrete subprogram contains the inlined copies.
    const open: (number | undefined)[] = [];
    let container: number | undefined;
    let containerDepth = -1;
    while (u.pos < unitEnd) {
      const at = u.pos;
      const code = uleb(u);
      if (code === 0) {
        open.pop();
        if (open.length <= containerDepth) {
          container = undefined;
          containerDepth = -1;
        }
        continue;
      }
      const a = table.get(code);
      if (a === undefined) return strName;
      const wanted = a.tag === DW_TAG.subprogram || a.tag === DW_TAG.inlined_subroutine;
      if (!wanted && a.fixed !== undefined) {
        u.skip(a.fixed);
        if (a.children) open.push(at);
        continue;
      }
      const die: Die = { tag: a.tag, concrete: false };
      for (const attr of a.attrs) {
        let form = attr.form;
        if (form === DW_FORM.indirect) form = u.ulebNumber("indirect form");
        if (!wanted) {
          u.skip(formSize(u, form, offsetSize, addressSize));
          continue;
        }
        const fieldAt = u.pos;
        if (attr.name === DW_AT.name && form === DW_FORM.string) {
          die.name = u.cstring();
          continue;
        }
        if (attr.name === DW_AT.name && form === DW_FORM.strp && offsetSize === 4) {
          die.strpField = fieldAt;
          u.skip(4);
          continue;
        }
        if (attr.name === DW_AT.abstract_origin || attr.name === DW_AT.specification) {
          const ref = reference(u, form, offsetSize, unitStart);
          if (ref !== undefined) die.origin = ref;
          else u.skip(formSize(u, form, offsetSize, addressSize));
          continue;
        }
        if (attr.name === DW_AT.low_pc || attr.name === DW_AT.ranges) die.concrete = true;
        u.skip(formSize(u, form, offsetSize, addressSize));
      }
      if (wanted) {
        if (a.tag === DW_TAG.inlined_subroutine) die.container = container;
        dies.set(at, die);
        if (a.tag === DW_TAG.subprogram && die.concrete && container === undefined) {
          container = at;
          containerDepth = open.length;
        }
      }
      if (a.children) open.push(at);
      else if (container === at) {
        container = undefined;
        containerDepth = -1;
      }
    }
  }
  return strName;
}

/** A unit-relative reference as an absolute `.debug_info` offset; undefined for forms it does not follow. */
function reference(u: Cursor, form: number, offsetSize: 4 | 8, unitStart: number): number | undefined {
  switch (form) {
    case DW_FORM.ref1:
      return unitStart + u.u8();
    case DW_FORM.ref2:
      return unitStart + u.u16();
    case DW_FORM.ref4:
      return unitStart + u.u32();
    case DW_FORM.ref8:
      return unitStart + u.small(u.u64(), "ref8");
    case DW_FORM.ref_udata:
      return unitStart + u.ulebNumber("ref_udata");
    case DW_FORM.ref_addr:
      return offsetField(u, offsetSize);
    default:
      return undefined;
  }
}
