/**
 * Targeted corruptions of real gcc output, each with the errno SPEC §2 gives
 * it. Every case must fail with exactly that errno as an `XspliceError`, at
 * `readElf` or at the first call that reads the corrupted part.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { type ElfFile, PT, readElf, SHT } from "../../src/elf/index.ts";
import { XspliceError } from "../../src/errors.ts";
import { baseExecutable, baseObject, Patch, put } from "./_corrupt.ts";

type Use = (f: ElfFile) => unknown;
const everything: Use = (f) => {
  for (const s of f.sections) s.data();
  f.symbols();
  f.dynamicSymbols();
  f.relocationSections();
  for (const s of f.sections) if (s.type === SHT.NOTE) f.notes(s);
  for (const p of f.programHeaders) if (p.type === PT.NOTE) f.segmentNotes(p);
  f.buildId();
};

function outcome(bytes: Uint8Array, use: Use = everything): string {
  try {
    use(readElf(bytes));
    return "ok";
  } catch (e) {
    if (!(e instanceof XspliceError)) throw e;
    assert.match(e.message, /at offset 0x[0-9a-f]+/, "the message names the offset");
    assert.equal(typeof e.where.offset, "number");
    return e.errno;
  }
}

const obj = baseObject();
const exe = baseExecutable();
const o = () => new Patch(obj);
const x = () => new Patch(exe);
const symtab = (p: Patch) => p.find(".symtab");
const firstRela = (s: { type: number }) => s.type === SHT.RELA;

const CASES: Array<[string, () => Uint8Array, string]> = [
  ["unmodified object", () => o().bytes, "ok"],
  ["unmodified executable", () => x().bytes, "ok"],
  ["bad magic", () => o().poke(0, 1, 0x7e).bytes, "EINVAL"],
  ["class ELF32", () => o().poke(4, 1, 1).bytes, "EOPNOTSUPP"],
  ["class 3", () => o().poke(4, 1, 3).bytes, "EOPNOTSUPP"],
  ["big-endian", () => o().poke(5, 1, 2).bytes, "EOPNOTSUPP"],
  ["e_ident version 0", () => o().poke(6, 1, 0).bytes, "EOPNOTSUPP"],
  ["e_version 2", () => o().header("version", 2).bytes, "EOPNOTSUPP"],
  ["shoff past the end", () => o().header("shoff", obj.length + 64).bytes, "EINVAL"],
  ["shoff 2^63", () => o().header("shoff", 1n << 63n).bytes, "EINVAL"],
  ["shentsize 32", () => o().header("shentsize", 32).bytes, "EINVAL"],
  ["shstrndx out of range", () => o().header("shstrndx", 200).bytes, "EINVAL"],
  ["shstrndx 0", () => o().header("shstrndx", 0).bytes, "EINVAL"],
  ["shstrndx SHN_XINDEX", () => o().header("shstrndx", 0xffff).bytes, "EOPNOTSUPP"],
  ["shstrndx names .symtab", (p = o()) => p.header("shstrndx", symtab(p).index).bytes, "EINVAL"],
  ["shnum 0 with a table (extended numbering)", () => o().header("shnum", 0).bytes, "EOPNOTSUPP"],
  ["huge shnum", () => o().header("shnum", 0xfffe).bytes, "EINVAL"],
  ["section offset past the end", () => o().section(".text.add", "offset", obj.length + 1).bytes, "EINVAL"],
  ["section size past the end", () => o().section(".text.add", "size", obj.length).bytes, "EINVAL"],
  ["section size 2^60", () => o().section(".text.add", "size", 1n << 60n).bytes, "EINVAL"],
  ["NOBITS offset past the end is fine", () => o().section(".bss", "offset", obj.length + 4096).bytes, "ok"],
  ["section name out of bounds", () => o().section(".text.add", "name", 0xfffff).bytes, "EINVAL"],
  [".shstrtab not NUL-terminated", () => o().inSection(".shstrtab", -1, 1, 0x41).bytes, "EINVAL"],
  [".shstrtab empty", () => o().section(".shstrtab", "size", 0).bytes, "EINVAL"],
  [".strtab not NUL-terminated", () => o().inSection(".strtab", -1, 1, 0x41).bytes, "EINVAL"],
  [".strtab empty", () => o().section(".strtab", "size", 0).bytes, "EINVAL"],
  ["symbol name out of bounds", () => o().symbol(3, "name", 0x7fffffff).bytes, "EINVAL"],
  ["symbol st_shndx out of range", () => o().symbol(3, "shndx", 0xfe00).bytes, "EINVAL"],
  ["symbol st_shndx SHN_XINDEX", () => o().symbol(3, "shndx", 0xffff).bytes, "EOPNOTSUPP"],
  [
    "symtab sh_link to a non-strtab",
    (p = o()) => p.section(".symtab", "link", p.find(".text.add").index).bytes,
    "EINVAL",
  ],
  ["symtab sh_link out of range", () => o().section(".symtab", "link", 999).bytes, "EINVAL"],
  ["symtab sh_link 0", () => o().section(".symtab", "link", 0).bytes, "EINVAL"],
  ["symtab sh_entsize 16", () => o().section(".symtab", "entsize", 16).bytes, "EINVAL"],
  [
    "symtab size not a multiple of 24",
    (p = o()) => p.section(".symtab", "size", symtab(p).size - 5).bytes,
    "EINVAL",
  ],
  ["rela sh_info out of range", () => o().section(firstRela, "info", 999).bytes, "EINVAL"],
  [
    "rela sh_link to a non-symtab",
    (p = o()) => p.section(firstRela, "link", p.find(".strtab").index).bytes,
    "EINVAL",
  ],
  ["rela sh_link out of range", () => o().section(firstRela, "link", 999).bytes, "EINVAL"],
  ["rela sh_entsize 16", () => o().section(firstRela, "entsize", 16).bytes, "EINVAL"],
  ["rela symbol index out of range", () => o().inSection(firstRela, 12, 4, 0xffffff).bytes, "EINVAL"],
  ["note descsz overrun", () => x().inSection(".note.gnu.build-id", 4, 4, 0x1000).bytes, "EINVAL"],
  ["note namesz overrun", () => x().inSection(".note.gnu.build-id", 0, 4, 0xffffffff).bytes, "EINVAL"],
  ["note section truncated to 8 bytes", () => x().section(".note.gnu.build-id", "size", 8).bytes, "EINVAL"],
  ["phentsize 32", () => x().header("phentsize", 32).bytes, "EINVAL"],
  ["phoff past the end", () => x().header("phoff", exe.length).bytes, "EINVAL"],
  ["phnum PN_XNUM", () => x().header("phnum", 0xffff).bytes, "EOPNOTSUPP"],
  [
    "PT_NOTE segment past the end",
    (p = x()) => {
      const ph = p.orig.programHeaders.find((h) => h.type === PT.NOTE)!;
      put(p.bytes, ph.headerOffset + 8, 8, exe.length);
      return p.bytes;
    },
    "EINVAL",
  ],
];

for (const [label, make, want] of CASES) {
  test(`malformed: ${label} → ${want}`, () => {
    assert.equal(outcome(make()), want);
  });
}

test("truncation at ~40 points from 0 to the full length is EINVAL (and the full file reads)", () => {
  const points = new Set<number>([0, 1, 3, 4, 15, 16, 17, 63, 64, obj.length - 1]);
  for (let i = 0; i <= 32; i++) points.add(Math.floor((obj.length * i) / 32));
  for (const n of points) {
    assert.equal(outcome(obj.subarray(0, n)), n === obj.length ? "ok" : "EINVAL", `truncated to ${n} bytes`);
  }
});

test("errors name the field: section index and header field", () => {
  const e = (() => {
    try {
      readElf(o().header("shentsize", 32).bytes);
    } catch (err) {
      return err as XspliceError;
    }
  })();
  assert.ok(e);
  assert.match(e.message, /e_shentsize/);
  assert.equal(e.where.offset, 58);
  const f = readElf(o().symbol(3, "name", 0x7fffffff).bytes);
  assert.throws(
    () => f.symbols(),
    (err: XspliceError) => /symbol 3 st_name/.test(err.message) && err.where.section === ".strtab",
  );
});
