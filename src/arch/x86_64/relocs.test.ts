import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { R_X86_64 } from "../../elf/defs.ts";
import { XspliceError } from "../../errors.ts";
import type { RelocValues } from "../types.ts";
import { relocation, relocationName, relocationRows } from "./relocs.ts";

const zero: RelocValues = { symbol: 0n, addend: 0n, place: 0n, slot: 0n, gotBase: 0n, size: 0n, tpoff: 0n };

function field(code: Uint8Array, off: number, size: number): bigint {
  const v = new DataView(code.buffer, code.byteOffset);
  return size === 8 ? v.getBigUint64(off, true) : BigInt(v.getUint32(off, true));
}

function isErr(errno: string, re: RegExp) {
  return (e: unknown) => e instanceof XspliceError && e.errno === errno && re.test(e.message);
}

test("every type SPEC §2 requires has a row", () => {
  for (const n of ["NONE", "64", "32", "32S", "PC32", "PLT32", "PC64", "GOTPCREL", "GOTPCRELX"] as const) {
    assert.ok(relocation(R_X86_64[n]), n);
  }
  for (const n of ["REX_GOTPCRELX", "GOTTPOFF", "TPOFF32"] as const) assert.ok(relocation(R_X86_64[n]), n);
  for (const r of relocationRows()) assert.equal(r.name, relocationName(r.type));
});

test("unsupported types have no row and keep their psABI name", () => {
  for (const t of [R_X86_64.COPY, R_X86_64.GLOB_DAT, R_X86_64.TLSLD, R_X86_64.GOT64, R_X86_64.TLSDESC]) {
    assert.equal(relocation(t), undefined);
    assert.match(relocationName(t), /^R_X86_64_[A-Z]/);
  }
  assert.equal(relocationName(999), "R_X86_64_999");
});

describe("range checks at the field's limits", () => {
  const cases: [keyof typeof R_X86_64, bigint, boolean][] = [
    ["32", 0xffff_ffffn, true],
    ["32", 0x1_0000_0000n, false],
    ["32", -1n, false],
    ["32S", 0x7fff_ffffn, true],
    ["32S", 0x8000_0000n, false],
    ["32S", -0x8000_0000n, true],
    ["32S", -0x8000_0001n, false],
    ["PC32", 0x7fff_ffffn, true],
    ["PC32", -0x8000_0001n, false],
    ["64", 0xffff_ffff_ffff_ffffn, true],
  ];
  for (const [name, value, ok] of cases) {
    test(`${name} = ${value}: ${ok ? "stored" : "EOVERFLOW"}`, () => {
      const row = relocation(R_X86_64[name])!;
      const code = new Uint8Array(16);
      // S = value, A = 0, P = 0: the formula gives the value itself for both absolute and PC-relative rows.
      const apply = () => row.apply(code, 4, { ...zero, symbol: value }, "sym");
      if (ok) {
        apply();
        assert.equal(field(code, 4, row.size), BigInt.asUintN(row.size * 8, value));
      } else {
        assert.throws(apply, isErr("EOVERFLOW", new RegExp(`R_X86_64_${name} against sym: value -?0x`)));
      }
    });
  }
});

test("a field that runs past the section is EINVAL", () => {
  const row = relocation(R_X86_64.PC32)!;
  assert.throws(() => row.apply(new Uint8Array(6), 3, zero, "s"), isErr("EINVAL", /outside the 6-byte/));
  assert.throws(() => row.apply(new Uint8Array(6), -1, zero, "s"), isErr("EINVAL", /outside/));
});

test("TLSGD rewrites only the general-dynamic sequence", () => {
  const row = relocation(R_X86_64.TLSGD)!;
  assert.equal(row.consumes, 8);
  const gd = Uint8Array.of(0x66, 0x48, 0x8d, 0x3d, 0, 0, 0, 0, 0x66, 0x66, 0x48, 0xe8, 0, 0, 0, 0);
  const other = gd.slice();
  other[9] = 0x90;
  assert.throws(() => row.apply(other, 4, { ...zero, tpoff: -8n }, "tv"), isErr("EOPNOTSUPP", /tv/));
  assert.throws(() => row.apply(gd, 4, { ...zero, tpoff: -(1n << 40n) }, "tv"), isErr("EOVERFLOW", /tv/));
  row.apply(gd, 4, { ...zero, tpoff: -8n }, "tv");
  assert.equal(new DataView(gd.buffer).getInt32(12, true), -8);
});
