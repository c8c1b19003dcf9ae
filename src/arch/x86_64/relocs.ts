/**
 * The x86-64 relocation table (STYLE §5; System V AMD64 psABI §4.4, table
 * "Relocation Types"): one row per supported type. The formulas use the
 * psABI's names: S symbol, A addend, P place, G+GOT slot address, Z size.
 *
 * Decisions (see docs/architecture.md "Linking"):
 * - GOTPCRELX / REX_GOTPCRELX are never relaxed to direct `lea`/`mov`: they
 *   always go through a GOT slot in the payload's own memory. Relaxing saves
 *   one load but rewrites instructions; a slot is always correct.
 * - TLSGD (general dynamic, emitted for `extern __thread` under -fPIC) is
 *   rewritten to local-exec, as ld does for executables: only static-TLS
 *   variables (whose thread-pointer offset is fixed) can be reached, because a
 *   live process cannot be given new TLS (SPEC §2).
 */

import { nameOf, R_X86_64 } from "../../elf/defs.ts";
import { XspliceError } from "../../errors.ts";
import { hex } from "../../hex.ts";
import type { RangeCheck, RelocInfo, RelocKind, RelocValues } from "../types.ts";

/** `R_X86_64_<NAME>` for a type number, or `R_X86_64_<number>` when it has no name; never throws. */
export function relocationName(type: number): string {
  return `R_X86_64_${nameOf(R_X86_64, type)}`;
}

/** `[min, end)` of a field of `bits` bits under `range`; undefined for "none" (anything fits). */
function bounds(bits: number, range: RangeCheck): { min: bigint; end: bigint } | undefined {
  if (range === "none") return undefined;
  const b = BigInt(bits);
  return range === "signed" ? { min: -(1n << (b - 1n)), end: 1n << (b - 1n) } : { min: 0n, end: 1n << b };
}

function fits(value: bigint, bits: number, range: RangeCheck): boolean {
  const r = bounds(bits, range);
  return r === undefined || (value >= r.min && value < r.end);
}

/** Store `value` as a little-endian field of `size` bytes (already range-checked; wraps to the width). */
function store(code: Uint8Array, field: number, size: number, value: bigint): void {
  if (size === 4) {
    // Byte stores: a DataView per field was a fifth of the relocation loop of a big payload.
    const n = Number(BigInt.asUintN(32, value));
    code[field] = n & 0xff;
    code[field + 1] = (n >>> 8) & 0xff;
    code[field + 2] = (n >>> 16) & 0xff;
    code[field + 3] = n >>> 24;
  } else if (size === 8) {
    new DataView(code.buffer, code.byteOffset, code.byteLength).setBigUint64(
      field,
      BigInt.asUintN(64, value),
      true,
    );
  } else if (size !== 0) throw new XspliceError("EINVAL", `relocation field of ${size} bytes`);
}

function checkField(name: string, code: Uint8Array, field: number, from: number, to: number): void {
  if (!Number.isSafeInteger(field) || field + from < 0 || field + to > code.length) {
    throw new XspliceError(
      "EINVAL",
      `${name}: bytes ${field + from}..${field + to} are outside the ${code.length}-byte section`,
      { offset: field },
    );
  }
}

interface RowSpec {
  size: number;
  pcRelative: boolean;
  range: RangeCheck;
  kind: RelocKind;
  compute(v: RelocValues): bigint;
}

/** A row whose `apply` is the plain compute → check → store. */
function row(type: number, spec: RowSpec): RelocInfo {
  const name = relocationName(type);
  const range = bounds(spec.size * 8, spec.range);
  return {
    type,
    name,
    ...spec,
    apply(code, field, v, symbol) {
      checkField(name, code, field, 0, spec.size);
      const value = spec.compute(v);
      if (range !== undefined && (value < range.min || value >= range.end)) {
        throw new XspliceError(
          "EOVERFLOW",
          `${name} against ${symbol}: value ${hex(value)} does not fit a ${spec.range} ${spec.size * 8}-bit field`,
          { symbol, offset: field },
        );
      }
      store(code, field, spec.size, value);
    },
  };
}

const pc = (v: RelocValues) => v.symbol + v.addend - v.place;
const abs = (v: RelocValues) => v.symbol + v.addend;
const viaSlot = (v: RelocValues) => v.slot + v.addend - v.place;

/** `data16 lea x@tlsgd(%rip),%rdi` before the TLSGD field. */
const GD_HEAD = [0x66, 0x48, 0x8d, 0x3d] as const;
/** `data16 data16 rex64 call` after it; the call's PLT32 to __tls_get_addr follows at +8. */
const GD_CALL = [0x66, 0x66, 0x48, 0xe8] as const;
/** `mov %fs:0,%rax; lea x@tpoff(%rax),%rax`: the same 16 bytes, local-exec (as ld writes it). */
const LE_SEQ = [0x64, 0x48, 0x8b, 0x04, 0x25, 0, 0, 0, 0, 0x48, 0x8d, 0x80] as const;

/** TLSGD: rewrite the general-dynamic call sequence to local-exec with the variable's tpoff. */
function tlsgdRow(): RelocInfo {
  const name = relocationName(R_X86_64.TLSGD);
  return {
    type: R_X86_64.TLSGD,
    name,
    size: 4,
    pcRelative: true,
    range: "signed",
    kind: "tlsgd",
    consumes: 8,
    compute: (v) => v.tpoff,
    apply(code, field, v, symbol) {
      checkField(name, code, field, -4, 12);
      const head = GD_HEAD.every((b, i) => code[field - 4 + i] === b);
      const call = GD_CALL.every((b, i) => code[field + 4 + i] === b);
      if (!head || !call) {
        throw new XspliceError(
          "EOPNOTSUPP",
          `${name} against ${symbol}: not the general-dynamic sequence (data16 lea; data16 data16 rex64 call)`,
          { symbol, offset: field },
        );
      }
      if (!fits(v.tpoff, 32, "signed")) {
        throw new XspliceError(
          "EOVERFLOW",
          `${name} against ${symbol}: thread-pointer offset ${hex(v.tpoff)} does not fit a signed 32-bit field`,
          { symbol, offset: field },
        );
      }
      code.set(LE_SEQ, field - 4);
      store(code, field + 8, 4, v.tpoff);
    },
  };
}

const R = R_X86_64;
const ROWS: readonly RelocInfo[] = [
  row(R.NONE, { size: 0, pcRelative: false, range: "none", kind: "none", compute: () => 0n }),
  row(R["64"], { size: 8, pcRelative: false, range: "none", kind: "absolute", compute: abs }),
  row(R["32"], { size: 4, pcRelative: false, range: "unsigned", kind: "absolute", compute: abs }),
  row(R["32S"], { size: 4, pcRelative: false, range: "signed", kind: "absolute", compute: abs }),
  row(R.PC32, { size: 4, pcRelative: true, range: "signed", kind: "pc", compute: pc }),
  row(R.PLT32, { size: 4, pcRelative: true, range: "signed", kind: "plt", compute: pc }),
  row(R.PC64, { size: 8, pcRelative: true, range: "none", kind: "pc", compute: pc }),
  row(R.GOTPCREL, { size: 4, pcRelative: true, range: "signed", kind: "got", compute: viaSlot }),
  row(R.GOTPCRELX, { size: 4, pcRelative: true, range: "signed", kind: "got", compute: viaSlot }),
  row(R.REX_GOTPCRELX, { size: 4, pcRelative: true, range: "signed", kind: "got", compute: viaSlot }),
  row(R.GOTTPOFF, { size: 4, pcRelative: true, range: "signed", kind: "gottpoff", compute: viaSlot }),
  row(R.TPOFF32, {
    size: 4,
    pcRelative: false,
    range: "signed",
    kind: "tpoff",
    compute: (v) => v.tpoff + v.addend,
  }),
  row(R.TPOFF64, {
    size: 8,
    pcRelative: false,
    range: "none",
    kind: "tpoff",
    compute: (v) => v.tpoff + v.addend,
  }),
  tlsgdRow(),
  row(R.GOTPC32, {
    size: 4,
    pcRelative: true,
    range: "signed",
    kind: "gotbase",
    compute: (v) => v.gotBase + v.addend - v.place,
  }),
  row(R.GOTPC64, {
    size: 8,
    pcRelative: true,
    range: "none",
    kind: "gotbase",
    compute: (v) => v.gotBase + v.addend - v.place,
  }),
  row(R.GOTOFF64, {
    size: 8,
    pcRelative: false,
    range: "none",
    kind: "gotbase",
    compute: (v) => v.symbol + v.addend - v.gotBase,
  }),
  row(R.SIZE32, {
    size: 4,
    pcRelative: false,
    range: "unsigned",
    kind: "size",
    compute: (v) => v.size + v.addend,
  }),
  row(R.SIZE64, {
    size: 8,
    pcRelative: false,
    range: "none",
    kind: "size",
    compute: (v) => v.size + v.addend,
  }),
];

const BY_TYPE = new Map(ROWS.map((r) => [r.type, r]));

/** The table row for `type`, or undefined when xsplice does not support it. */
export function relocation(type: number): RelocInfo | undefined {
  return BY_TYPE.get(type);
}

/** Every supported row, in table order (for tests and documentation). */
export function relocationRows(): readonly RelocInfo[] {
  return ROWS;
}
