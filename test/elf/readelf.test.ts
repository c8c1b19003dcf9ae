/**
 * The reader against binutils: gcc-built objects, a PIE executable, a static
 * executable and a shared library, compared field by field with `readelf -W`
 * and `nm -P` on the same files.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, test } from "node:test";
import {
  type ElfFile,
  type ElfSymbol,
  EM,
  ET,
  nameOf,
  PF,
  PT,
  R_X86_64,
  readElf,
  SHF,
  SHT,
  STB,
  STT,
  STV,
  sonameOf,
} from "../../src/elf/index.ts";
import { compileC } from "../helpers/cc.ts";
import {
  nmDefined,
  readelfHeader,
  readelfNotes,
  readelfRelocs,
  readelfSections,
  readelfSegments,
  readelfSoname,
  readelfSymbols,
} from "./_readelf.ts";

const FIXTURES: Array<{ label: string; path: () => string }> = [
  {
    label: "object (-ffunction-sections -fdata-sections -fcommon -g)",
    path: () =>
      compileC({
        sources: ["elf/objects.c"],
        kind: "obj",
        flags: ["-O2", "-g", "-ffunction-sections", "-fdata-sections", "-fcommon"],
        name: "elf-objects",
      }),
  },
  {
    label: "PIC object",
    path: () =>
      compileC({
        sources: ["elf/objects.c"],
        kind: "obj",
        flags: ["-O2", "-fPIC", "-ffunction-sections"],
        name: "elf-pic",
      }),
  },
  {
    label: "PIE executable with --build-id",
    path: () =>
      compileC({
        sources: ["elf/objects.c"],
        kind: "exe",
        flags: ["-O2", "-fPIE", "-pie", "-Wl,--build-id"],
        name: "elf-pie",
      }),
  },
  {
    label: "shared library",
    path: () =>
      compileC({
        sources: ["elf/lib.c"],
        kind: "shared",
        flags: ["-O2", "-Wl,--build-id=sha1"],
        name: "elf-lib",
      }),
  },
  {
    label: "shared library with a soname",
    path: () =>
      compileC({
        sources: ["elf/lib.c"],
        kind: "shared",
        flags: ["-O2", "-Wl,--build-id=sha1", "-Wl,-soname,libelf-lib.so.1"],
        name: "elf-lib-soname",
      }),
  },
  {
    label: "static executable",
    path: () =>
      compileC({
        sources: ["elf/objects.c"],
        kind: "exe",
        flags: ["-O2", "-static", "-no-pie"],
        name: "elf-static",
      }),
  },
];

// readelf's spellings where they differ from the constant names.
const STT_READELF: Record<string, string> = { GNU_IFUNC: "IFUNC" };
const STB_READELF: Record<string, string> = { GNU_UNIQUE: "UNIQUE" };
const MACHINE: Record<string, number> = { "Advanced Micro Devices X86-64": EM.X86_64, AArch64: EM.AARCH64 };
const SHF_LETTER: Array<[bigint, string]> = [
  [SHF.WRITE, "W"],
  [SHF.ALLOC, "A"],
  [SHF.EXECINSTR, "X"],
  [SHF.MERGE, "M"],
  [SHF.STRINGS, "S"],
  [SHF.INFO_LINK, "I"],
  [SHF.LINK_ORDER, "L"],
  [SHF.OS_NONCONFORMING, "O"],
  [SHF.GROUP, "G"],
  [SHF.TLS, "T"],
  [SHF.COMPRESSED, "C"],
  [SHF.EXCLUDE, "E"],
  [SHF.GNU_RETAIN, "R"],
  [SHF.X86_64_LARGE, "l"],
];

function flagLetters(flags: bigint): string {
  return SHF_LETTER.filter(([bit]) => (flags & bit) !== 0n)
    .map(([, l]) => l)
    .sort()
    .join("");
}

function ndx(s: ElfSymbol): string {
  switch (s.section.kind) {
    case "undefined":
      return "UND";
    case "absolute":
      return "ABS";
    case "common":
      return "COM";
    case "section":
      return String(s.section.index);
  }
}

function hex(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString("hex");
}

for (const fx of FIXTURES) {
  describe(`readElf vs readelf: ${fx.label}`, () => {
    let file = "";
    let elf: ElfFile;
    const load = () => {
      if (!file) {
        file = fx.path();
        elf = readElf(readFileSync(file));
      }
      return elf;
    };

    test("header", () => {
      const f = load();
      const h = readelfHeader(file);
      const num = (k: string) => Number.parseInt(h.get(k)!, /^0x/.test(h.get(k)!) ? 16 : 10);
      assert.equal(nameOf(ET, f.header.type), h.get("Type")!.split(" ")[0]);
      assert.equal(f.header.machine, MACHINE[h.get("Machine")!]);
      assert.equal(f.header.entry, BigInt(h.get("Entry point address")!));
      assert.equal(f.header.phoff, num("Start of program headers"));
      assert.equal(f.header.shoff, num("Start of section headers"));
      assert.equal(f.header.flags, num("Flags"));
      assert.equal(f.header.ehsize, num("Size of this header"));
      assert.equal(f.header.phentsize, num("Size of program headers"));
      assert.equal(f.header.phnum, num("Number of program headers"));
      assert.equal(f.header.shentsize, num("Size of section headers"));
      assert.equal(f.header.shnum, num("Number of section headers"));
      assert.equal(f.header.shstrndx, num("Section header string table index"));
      assert.equal(f.header.abiVersion, num("ABI Version"));
      assert.equal(f.header.version, num("Version"));
    });

    test("sections: name, type, flags, address, offset, size, link, info, alignment", () => {
      const f = load();
      const want = readelfSections(file);
      assert.equal(f.sections.length, want.length);
      for (const w of want) {
        const s = f.section(w.index);
        const at = `section [${w.index}] ${w.name}`;
        assert.equal(s.name, w.name, at);
        assert.equal(nameOf(SHT, s.type), w.type, at);
        assert.equal(flagLetters(s.flags), [...w.flags].sort().join(""), at);
        assert.equal(s.addr, w.addr, at);
        assert.equal(s.offset, w.offset, at);
        assert.equal(s.size, w.size, at);
        assert.equal(s.entsize, w.entsize, at);
        assert.equal(s.link, w.link, at);
        assert.equal(s.info, w.info, at);
        assert.equal(s.addralign, w.align, at);
        assert.equal(f.sectionByName(w.name)?.name, w.name);
        if (s.type !== SHT.NOBITS) assert.equal(s.data().length, w.size, at);
      }
    });

    test("every symbol of .symtab and .dynsym", () => {
      const f = load();
      const tables = readelfSymbols(file);
      assert.ok(tables.size > 0, "readelf found symbol tables");
      for (const [table, want] of tables) {
        const isDyn = table === ".dynsym";
        const got = isDyn ? f.dynamicSymbols() : f.symbols();
        assert.equal(got.length, want.length, table);
        for (const w of want) {
          const s = got[w.num]!;
          const at = `${table} #${w.num} ${w.name}`;
          assert.equal(s.index, w.num, at);
          assert.equal(s.value, w.value, at);
          assert.equal(s.size, w.size, at);
          const type = nameOf(STT, s.type);
          assert.equal(STT_READELF[type] ?? type, w.type, at);
          const bind = nameOf(STB, s.bind);
          assert.equal(STB_READELF[bind] ?? bind, w.bind, at);
          assert.equal(nameOf(STV, s.visibility), w.vis, at);
          assert.equal(ndx(s), w.ndx, at);
          // readelf shows a section symbol by its section's name, and dynamic symbols with "@version (n)".
          let name = s.name;
          if (s.type === STT.SECTION && name === "" && s.section.kind === "section") {
            name = f.section(s.section.index).name;
          }
          assert.equal(name, isDyn ? w.name.replace(/@.*$/, "") : w.name, at);
        }
      }
    });

    test("defined symbols agree with nm", () => {
      const f = load();
      const hasSymtab = f.symbolTable() !== undefined;
      const fromNm = nmDefined(file, !hasSymtab);
      const ours = (hasSymtab ? f.symbols() : f.dynamicSymbols()).filter(
        (s) =>
          s.name !== "" && s.type !== STT.FILE && s.type !== STT.SECTION && s.section.kind !== "undefined",
      );
      const key = (name: string, value: bigint) => `${name} ${value.toString(16)}`;
      assert.deepEqual(
        new Set(ours.map((s) => key(s.name, s.value))),
        new Set(fromNm.map((s) => key(s.name, s.value))),
      );
    });

    test("every relocation: offset, type, symbol, addend", () => {
      const f = load();
      const want = readelfRelocs(file);
      const got = f.relocationSections();
      assert.equal(got.length, [...want.keys()].length);
      for (const r of got) {
        const w = want.get(r.section.name);
        assert.ok(w, `readelf shows ${r.section.name}`);
        assert.equal(r.section.offset, w.offset);
        assert.equal(r.relocations.length, w.relocs.length, r.section.name);
        assert.equal(r.target, r.section.info);
        assert.equal(r.symtab, r.section.link);
        r.relocations.forEach((rel, i) => {
          const wr = w.relocs[i]!;
          const at = `${r.section.name} #${i}`;
          assert.equal(rel.offset, wr.offset, at);
          assert.equal(rel.type, wr.type, at);
          assert.equal(`R_X86_64_${nameOf(R_X86_64, rel.type)}`, wr.typeName, at);
          assert.equal(rel.symbol, wr.sym, at);
          assert.equal(rel.addend, wr.addend, at);
        });
      }
    });

    test("notes and the build-id", () => {
      const f = load();
      const want = readelfNotes(file);
      const got = f.sections
        .filter((s) => s.type === SHT.NOTE)
        .flatMap((s) => f.notes(s).map((n) => ({ container: s.name, owner: n.name, descsz: n.desc.length })));
      assert.deepEqual(
        got,
        want.map((w) => ({ container: w.container, owner: w.owner, descsz: w.descsz })),
      );
      const id = want.find((w) => w.buildId)?.buildId;
      const ours = f.buildId();
      assert.equal(ours === undefined ? undefined : hex(ours), id);
      // The PT_NOTE segments hold the same allocated notes as the sections.
      if (f.programHeaders.some((p) => p.type === PT.NOTE)) {
        const segs = f.programHeaders.filter((p) => p.type === PT.NOTE).flatMap((p) => f.segmentNotes(p));
        const allocated = f.sections
          .filter((s) => s.type === SHT.NOTE && (s.flags & SHF.ALLOC) !== 0n)
          .flatMap((s) => f.notes(s));
        assert.deepEqual(
          segs.map((n) => [n.name, n.type, hex(n.desc)]).sort(),
          allocated.map((n) => [n.name, n.type, hex(n.desc)]).sort(),
        );
      }
    });

    test("DT_SONAME", () => {
      assert.equal(sonameOf(load()), readelfSoname(file));
    });

    test("program headers", () => {
      const f = load();
      const want = readelfSegments(file);
      assert.equal(f.programHeaders.length, want.length);
      f.programHeaders.forEach((p, i) => {
        const w = want[i]!;
        const at = `program header ${i}`;
        assert.equal(nameOf(PT, p.type), w.type, at);
        assert.equal(p.offset, w.offset, at);
        assert.equal(p.vaddr, w.vaddr, at);
        assert.equal(p.paddr, w.paddr, at);
        assert.equal(p.filesz, w.filesz, at);
        assert.equal(p.memsz, w.memsz, at);
        assert.equal(p.align, w.align, at);
        const flags = `${p.flags & PF.R ? "R" : " "}${p.flags & PF.W ? "W" : " "}${p.flags & PF.X ? "E" : " "}`;
        assert.equal(flags.trim(), w.flags, at);
      });
    });
  });
}
