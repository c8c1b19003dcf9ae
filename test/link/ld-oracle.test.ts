/**
 * The payload linker against GNU ld: the same gcc object linked by both at the
 * same section addresses, with the same addresses for undefined symbols, must
 * give the same bytes in every section. GOT-using fields differ by design (the
 * GOTs are in different places, and ld turns initial-exec TLS into local-exec):
 * for those the effective value — the slot's content, or ld's immediate — is
 * compared instead.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, test } from "node:test";
import { archFor } from "../../src/arch/index.ts";
import {
  layoutSections,
  linkPayload,
  type RegionBases,
  type SymbolSource,
} from "../../src/core/link/index.ts";
import { type ElfFile, EM, PT, readElf, SHT, STB, STT } from "../../src/elf/index.ts";
import { compileC } from "../helpers/cc.ts";
import { ldLink } from "./_ld.ts";

const arch = archFor(EM.X86_64);
const PAGE = 0x1000n;

interface Variant {
  name: string;
  source: string;
  flags: string[];
  /** Base of RX; RW and R follow with a gap. */
  base: bigint;
  tls?: boolean;
}

const COMMON = ["-O2", "-g", "-ffunction-sections", "-fdata-sections"];
const variants: Variant[] = [
  // Non-PIC code uses 32-bit absolute addresses: payload and externals below 2 GiB.
  { name: "non-PIC", source: "link/payload-like.c", flags: ["-fno-pic"], base: 0x4000_0000n },
  { name: "PIC", source: "link/payload-like.c", flags: ["-fPIC"], base: 0x7f12_3456_0000n },
  { name: "PIE", source: "link/payload-like.c", flags: ["-fpie"], base: 0x5555_5555_0000n },
  {
    name: "TLS non-PIC",
    source: "link/tls-use.c",
    flags: ["-fno-pic"],
    base: 0x4000_0000n,
    tls: true,
  },
  {
    name: "TLS PIC",
    source: "link/tls-use.c",
    flags: ["-fPIC"],
    base: 0x7f12_3456_0000n,
    tls: true,
  },
];

function i32(b: Uint8Array, off: number): bigint {
  return BigInt(new DataView(b.buffer, b.byteOffset).getInt32(off, true));
}
function u64(b: Uint8Array, off: number): bigint {
  return new DataView(b.buffer, b.byteOffset).getBigUint64(off, true);
}

/** The bytes at `address` in a linked executable (any section containing it). */
function readAt(exe: ElfFile, address: bigint, n: number): Uint8Array {
  const s = exe.sections.find((x) => x.addr <= address && address + BigInt(n) <= x.addr + BigInt(x.size));
  assert.ok(s, `ld output has a section at 0x${address.toString(16)}`);
  const off = Number(address - s.addr);
  return s.data().subarray(off, off + n);
}

/** Static-TLS offsets (x86-64 variant II: the block ends at the thread pointer) of ld's TLS symbols. */
function tlsOffsets(exe: ElfFile): Map<string, bigint> {
  const tls = exe.programHeaders.find((p) => p.type === PT.TLS);
  assert.ok(tls, "ld output has PT_TLS");
  const align = tls.align === 0n ? 1n : tls.align;
  const end = ((tls.memsz + align - 1n) / align) * align;
  const out = new Map<string, bigint>();
  for (const s of exe.symbols()) if (s.type === STT.TLS) out.set(s.name, s.value - end);
  return out;
}

for (const v of variants) {
  describe(`linker vs ld: ${v.name}`, () => {
    const obj = compileC({
      sources: [v.source],
      kind: "obj",
      flags: [...COMMON, ...v.flags],
      name: `link-${v.name.replace(/\W+/g, "-")}`,
    });
    const elf = readElf(new Uint8Array(readFileSync(obj)));
    const layout = layoutSections(elf, arch);
    const bases: RegionBases = {
      rx: v.base,
      rw: v.base + BigInt(layout.sizes.rx) + PAGE,
      r: v.base + BigInt(layout.sizes.rx + layout.sizes.rw) + 2n * PAGE,
    };
    const end = bases.r + BigInt(layout.sizes.r);
    // Undefined symbols at distinct addresses in reach: below the payload, 64 KiB apart.
    const undefinedNames = [
      ...new Set(
        elf
          .symbols()
          .filter((s) => s.section.kind === "undefined" && s.name !== "" && s.type !== STT.TLS)
          .map((s) => s.name),
      ),
    ].filter((n) => !n.startsWith("tls_"));
    const externals = new Map(undefinedNames.map((n, i) => [n, v.base - 0x10_0000n - BigInt(i) * 0x1_0000n]));
    const placed = [...layout.sections].map(([index, p]) => ({ s: elf.section(index), p }));
    const ldPlaced = placed.filter(({ s }) => s.type !== SHT.NOTE);
    const ldBytes = ldLink(
      v.tls
        ? [obj, compileC({ sources: ["link/tls-def.c"], kind: "obj", flags: ["-O2", ...v.flags] })]
        : [obj],
      ldPlaced.map(({ s, p }) => ({ name: s.name, address: bases[p.region] + BigInt(p.offset) })),
      Object.fromEntries(externals),
      { got: end + 0x10_0000n, tls: end + 0x20_0000n },
    );
    const exe = readElf(ldBytes);
    const tpoffs = v.tls ? tlsOffsets(exe) : new Map<string, bigint>();
    const sources: SymbolSource[] = [
      {
        describe: "test externals",
        lookup: (name) => {
          const address = externals.get(name);
          if (address !== undefined) return { address };
          const tpoff = tpoffs.get(name);
          return tpoff === undefined ? undefined : { address: 0n, tls: { tpoff } };
        },
      },
    ];
    const image = linkPayload(elf, arch, layout, bases, sources);

    test("section names are unique, so the ld script places each one", () => {
      const names = ldPlaced.map(({ s }) => s.name);
      assert.equal(new Set(names).size, names.length);
      assert.ok(placed.some(({ p }) => p.region === "rx") && placed.some(({ p }) => p.region === "r"));
    });

    test("every section has the same bytes as ld's, GOT-using fields compared by effect", () => {
      // Fields whose bytes legitimately differ, per section index, with what to check instead.
      const masked = new Map<number, Set<number>>();
      let indirect = 0;
      for (const rs of elf.relocationSections()) {
        const p = layout.sections.get(rs.target);
        if (!p) continue;
        const target = elf.section(rs.target);
        const mine = image.regions[p.region].subarray(p.offset, p.offset + p.size);
        const ldSec = exe.sectionByName(target.name);
        for (const rela of rs.relocations) {
          const row = arch.relocation(rela.type)!;
          if (row.kind !== "got" && row.kind !== "gottpoff") continue;
          if (!ldSec) continue;
          indirect++;
          const f = Number(rela.offset);
          const set = masked.get(rs.target) ?? new Set<number>();
          for (let i = f - 3; i < f + 4; i++) set.add(i);
          masked.set(rs.target, set);
          const place = image.sectionAddress(rs.target) + rela.offset;
          const mySlot = i32(mine, f) - rela.addend + place;
          const myValue = u64(image.regions.r, Number(mySlot - bases.r));
          const theirs = ldSec.data();
          const relaxed = theirs[f - 2] === 0xc7; // ld's IE → LE: `mov $tpoff, %reg`
          const theirValue = relaxed
            ? i32(theirs, f)
            : u64(readAt(exe, i32(theirs, f) - rela.addend + place, 8), 0);
          const expected = BigInt.asUintN(64, theirValue);
          assert.equal(myValue, expected, `${row.name} at ${target.name}+0x${f.toString(16)}`);
        }
      }
      if (v.flags.includes("-fPIC") && !v.tls) assert.ok(indirect > 0, "PIC code uses the GOT");
      let compared = 0;
      for (const { s, p } of ldPlaced) {
        if (s.name === ".eh_frame") continue; // ld rewrites .eh_frame (CIE merging, terminator)
        if (s.size === 0) continue; // ld drops empty sections
        const theirs = exe.sectionByName(s.name);
        assert.ok(theirs, `ld output has ${s.name}`);
        assert.equal(theirs.addr, bases[p.region] + BigInt(p.offset), `${s.name} at the same address`);
        assert.equal(theirs.size, s.size, `${s.name} size`);
        if (s.type === SHT.NOBITS) continue;
        const mine = image.regions[p.region].subarray(p.offset, p.offset + p.size);
        const skip = masked.get(s.index) ?? new Set<number>();
        const want = theirs.data();
        for (let i = 0; i < s.size; i++) {
          if (skip.has(i)) continue;
          if (mine[i] !== want[i]) {
            assert.fail(
              `${s.name}+0x${i.toString(16)}: 0x${mine[i]?.toString(16)} vs ld 0x${want[i]?.toString(16)}`,
            );
          }
        }
        compared++;
      }
      assert.ok(compared >= 3, `compared ${compared} sections`);
    });

    test("exported symbols are where ld put them", () => {
      const theirs = new Map(
        exe
          .symbols()
          .filter((s) => (s.bind === STB.GLOBAL || s.bind === STB.WEAK) && s.section.kind === "section")
          .map((s) => [s.name, s.value]),
      );
      assert.ok(image.symbols.size > 0);
      for (const [name, address] of image.symbols) assert.equal(address, theirs.get(name), name);
    });
  });
}
