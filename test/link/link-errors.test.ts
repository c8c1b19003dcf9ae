/** The linker's failures and rerouting, on gcc objects (mutated where a failure needs it). */
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
import { type ElfFile, EM, R_X86_64, readElf, SHT } from "../../src/elf/index.ts";
import { XspliceError } from "../../src/errors.ts";
import { compileC } from "../helpers/cc.ts";
import { branchTarget, codeRelocations, disassemble, ripTarget } from "./_disasm.ts";

const arch = archFor(EM.X86_64);
const FLAGS = ["-O2", "-ffunction-sections", "-fdata-sections", "-fcf-protection=none"];

function build(source: string, flags: string[]): { path: string; bytes: Uint8Array } {
  const path = compileC({
    sources: [source],
    kind: "obj",
    flags: [...FLAGS, ...flags],
    name: `err-${flags.join("")}`,
  });
  return { path, bytes: new Uint8Array(readFileSync(path)) };
}

function basesFor(elf: ElfFile, rx: bigint): RegionBases {
  const l = layoutSections(elf, arch);
  return { rx, rw: rx + BigInt(l.sizes.rx), r: rx + BigInt(l.sizes.rx + l.sizes.rw) };
}

/** Every undefined symbol at `at(name)`. */
function everywhere(at: (name: string) => bigint): SymbolSource[] {
  return [{ describe: "test", lookup: (name) => ({ address: at(name) }) }];
}

/** The file offset of the first RELA entry whose type is `type`, in a section relocating code. */
function relaEntry(elf: ElfFile, type: number): { at: number; section: string } {
  for (const rs of elf.relocationSections()) {
    const i = rs.relocations.findIndex((r) => r.type === type);
    if (i >= 0) return { at: rs.section.offset + i * 24, section: elf.section(rs.target).name };
  }
  throw new Error(`no relocation of type ${type}`);
}

function isErr(errno: string, re: RegExp) {
  return (e: unknown) => {
    assert.ok(e instanceof XspliceError, String(e));
    assert.equal(e.errno, errno, e.message);
    assert.match(e.message, re);
    return true;
  };
}

test("an unsupported relocation type is EOPNOTSUPP naming it", () => {
  const { bytes } = build("link/payload-like.c", ["-fPIC"]);
  const copy = bytes.slice();
  const { at } = relaEntry(readElf(copy), R_X86_64.PLT32);
  new DataView(copy.buffer).setUint32(at + 8, R_X86_64.COPY, true); // r_info's type half
  assert.throws(() => layoutSections(readElf(copy), arch), isErr("EOPNOTSUPP", /R_X86_64_COPY at \.text\./));
});

test("a field outside its section is EINVAL naming the section", () => {
  const { bytes } = build("link/payload-like.c", ["-fPIC"]);
  const copy = bytes.slice();
  const elf = readElf(copy);
  const { at, section } = relaEntry(elf, R_X86_64.PLT32);
  const size = elf.sectionByName(section)!.size;
  new DataView(copy.buffer).setBigUint64(at, BigInt(size - 2), true); // r_offset: 2 bytes before the end
  const mutated = readElf(copy);
  const layout = layoutSections(mutated, arch);
  assert.throws(
    () =>
      linkPayload(
        mutated,
        arch,
        layout,
        basesFor(mutated, 0x7f00_0000_0000n),
        everywhere(() => 0x7f00_1000_0000n),
      ),
    isErr("EINVAL", new RegExp(`R_X86_64_PLT32 field at ${section.replaceAll(".", "\\.")}\\+0x`)),
  );
});

test("a 32-bit absolute relocation to a payload above 2 GiB is EOVERFLOW naming symbol, type and value", () => {
  const { bytes } = build("link/payload-like.c", ["-fno-pic"]);
  const elf = readElf(bytes);
  assert.throws(
    () =>
      linkPayload(
        elf,
        arch,
        layoutSections(elf, arch),
        basesFor(elf, 0x1_0000_0000n),
        everywhere(() => 0x1000n),
      ),
    isErr("EOVERFLOW", /R_X86_64_32S? against [.\w]+[a-z]: value 0x1[0-9a-f]{8} does not fit/),
  );
});

test("an undefined symbol with no source is ENOENT naming it", () => {
  const { bytes } = build("link/far.c", ["-fpie"]);
  const elf = readElf(bytes);
  assert.throws(
    () => linkPayload(elf, arch, layoutSections(elf, arch), basesFor(elf, 0x7f00_0000_0000n), []),
    (e) =>
      isErr("ENOENT", /undefined symbol far_\w+ not found/)(e) &&
      /^far_/.test((e as XspliceError).where.symbol!),
  );
});

describe("weak and COMMON symbols", () => {
  const { bytes } = build("link/weak-common.c", ["-fPIC", "-fcommon"]);
  const elf = readElf(bytes);
  test("COMMON is EINVAL", () => {
    assert.throws(
      () => linkPayload(elf, arch, layoutSections(elf, arch), basesFor(elf, 0x7f00_0000_0000n), []),
      isErr("EINVAL", /COMMON symbol common_var/),
    );
  });
  test("a weak undefined symbol nothing defines is 0", () => {
    const { bytes: b2 } = build("link/weak-common.c", ["-fPIC", "-fno-common"]);
    const e2 = readElf(b2);
    const sources: SymbolSource[] = [
      {
        describe: "only common_var",
        lookup: (n) => (n === "common_var" ? { address: 0x7f00_2000_0000n } : undefined),
      },
    ];
    const image = linkPayload(e2, arch, layoutSections(e2, arch), basesFor(e2, 0x7f00_0000_0000n), sources);
    const slot = image.gotSlots.find((s) => s.symbol === "maybe_there");
    assert.ok(slot, "maybe_there is reached through a GOT slot (-fPIC)");
    assert.equal(
      new DataView(image.regions.r.buffer).getBigUint64(Number(slot.address - image.bases.r), true),
      0n,
    );
  });
});

describe("targets out of reach", () => {
  const { path, bytes } = build("link/far.c", ["-fpie"]);
  const elf = readElf(bytes);
  const layout = layoutSections(elf, arch);
  const bases = basesFor(elf, 0x7f00_0000_0000n);
  // 64 GiB below the payload: far beyond rel32.
  const far = (name: string) => 0x6f00_0000_0000n + BigInt(name.length) * 0x1000n;
  const image = linkPayload(elf, arch, layout, bases, everywhere(far));

  test("calls and jumps go through stubs that jump to the symbol", () => {
    let checked = 0;
    for (const r of codeRelocations(path).filter((x) => x.type === "R_X86_64_PLT32")) {
      const sec = elf.sectionByName(r.section)!;
      const p = layout.sections.get(sec.index)!;
      const at = image.sectionAddress(sec.index);
      const code = image.regions[p.region].subarray(p.offset, p.offset + p.size);
      const insn = disassemble(code, at).find(
        (i) => i.address + BigInt(i.bytes.length) === at + BigInt(r.offset + 4),
      )!;
      assert.match(insn.mnemonic, /^(call|jmp)$/);
      const stubAt = branchTarget(insn);
      const stub = image.stubs.find((s) => s.address === stubAt);
      assert.ok(stub, `${r.mnemonic} in ${r.section} lands on a stub`);
      const off = Number(stubAt - bases.rx);
      const decoded = disassemble(image.regions.rx.subarray(off, off + arch.stubSize), stubAt)[0]!;
      const slot = ripTarget(decoded);
      const target = new DataView(image.regions.rx.buffer).getBigUint64(Number(slot - bases.rx), true);
      assert.equal(target, far(r.symbol.replace(/-0x4$/, "")), `stub for ${r.symbol}`);
      checked++;
    }
    assert.ok(checked >= 2);
    assert.ok(image.stubs.length <= layout.stubs.count);
  });

  test("a RIP-relative lea becomes a load from a GOT slot holding the address", () => {
    const r = codeRelocations(path).find((x) => x.mnemonic === "lea")!;
    const sec = elf.sectionByName(r.section)!;
    const p = layout.sections.get(sec.index)!;
    const at = image.sectionAddress(sec.index);
    const code = image.regions[p.region].subarray(p.offset, p.offset + p.size);
    const insn = disassemble(code, at).find(
      (i) => i.address + BigInt(i.bytes.length) === at + BigInt(r.offset + 4),
    )!;
    assert.equal(insn.mnemonic, "mov");
    const slot = ripTarget(insn);
    const value = new DataView(image.regions.r.buffer).getBigUint64(Number(slot - bases.r), true);
    // far_sink(&far_data[2]): the slot holds the address the lea computed.
    assert.equal(value, far("far_data") + 8n);
  });

  test("a load of out-of-reach data cannot be rerouted: EOVERFLOW naming the symbol", () => {
    const other = readElf(build("link/insn.c", ["-fpie"]).bytes);
    assert.throws(
      () =>
        linkPayload(
          other,
          arch,
          layoutSections(other, arch),
          basesFor(other, 0x7f00_0000_0000n),
          everywhere(far),
        ),
      isErr("EOVERFLOW", /R_X86_64_PC32 against ext_(data|array): value -0x/),
    );
  });
});

test("layout: every allocated section placed once, by flags, aligned, without overlap", () => {
  const { path, bytes } = build("link/payload-like.c", ["-fPIC"]);
  const elf = readElf(bytes);
  const layout = layoutSections(elf, arch);
  const alloc = elf.sections.filter((s) => (s.flags & 2n) !== 0n && s.type !== SHT.RELA);
  assert.equal(layout.sections.size, alloc.length);
  const spans: Record<string, [number, number][]> = { rx: [], rw: [], r: [] };
  for (const s of alloc) {
    const p = layout.sections.get(s.index)!;
    const want = (s.flags & 4n) !== 0n ? "rx" : (s.flags & 1n) !== 0n ? "rw" : "r";
    assert.equal(p.region, want, s.name);
    assert.equal(p.offset % Math.max(1, Number(s.addralign)), 0, `${s.name} aligned`);
    spans[p.region]!.push([p.offset, p.offset + s.size]);
  }
  for (const [region, list] of Object.entries(spans)) {
    list.sort((a, b) => a[0] - b[0]);
    for (let i = 1; i < list.length; i++) assert.ok(list[i]![0] >= list[i - 1]![1], `${region} overlap`);
    const size = layout.sizes[region as "rx"];
    assert.equal(size % layout.pageSize, 0);
    assert.ok(size >= (list.at(-1)?.[1] ?? 0));
  }
  // objdump -r as the oracle: one GOT slot per distinct symbol of a GOTPCREL-family relocation.
  const gotSyms = new Set(
    codeRelocations(path)
      .filter((r) => /GOTPCREL/.test(r.type))
      .map((r) => r.symbol.replace(/-0x4$/, "")),
  );
  assert.ok(gotSyms.size > 0);
  assert.ok(layout.got.count >= gotSyms.size);
  assert.ok(layout.got.offset + layout.got.count * 8 <= layout.sizes.r);
});
