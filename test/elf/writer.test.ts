/**
 * The writer against binutils and gcc: an object written by
 * `writeRelocatable` must pass `readelf` without warnings, survive `ld -r`,
 * link with gcc into a program that runs, and read back through `readElf`.
 */
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import {
  nameOf,
  R_X86_64,
  type RelocatableSpec,
  readElf,
  SHF,
  SHT,
  STB,
  STT,
  writeRelocatable,
} from "../../src/elf/index.ts";
import { BUILD_DIR, FIXTURES } from "../helpers/cc.ts";

const text = Uint8Array.of(
  // answer: mov $42, %eax; ret
  0xb8,
  0x2a,
  0x00,
  0x00,
  0x00,
  0xc3,
  // greet: lea msg(%rip), %rdi; jmp puts@PLT
  0x48,
  0x8d,
  0x3d,
  0,
  0,
  0,
  0,
  0xe9,
  0,
  0,
  0,
  0,
);
const message = new TextEncoder().encode("hello from the writer\0");

/** A small but complete object: code, read-only and writable data, bss, locals, an import. */
const spec: RelocatableSpec = {
  sections: [
    { name: ".text", flags: SHF.ALLOC | SHF.EXECINSTR, addralign: 16, data: text },
    { name: ".rodata", flags: SHF.ALLOC, addralign: 1, data: message },
    { name: ".data", flags: SHF.ALLOC | SHF.WRITE, addralign: 8, data: new Uint8Array(8) },
    { name: ".bss", type: SHT.NOBITS, flags: SHF.ALLOC | SHF.WRITE, addralign: 8, size: 16 },
    { name: ".note.GNU-stack", data: new Uint8Array(0) },
  ],
  symbols: [
    { name: "answer", type: STT.FUNC, section: ".text", value: 0n, size: 6n },
    { name: "writer.c", type: STT.FILE, bind: STB.LOCAL, section: "absolute" },
    { name: "greet", type: STT.FUNC, section: ".text", value: 6n, size: 12n },
    { name: "msg", type: STT.OBJECT, bind: STB.LOCAL, section: ".rodata", size: BigInt(message.length) },
    { name: "greet_ptr", type: STT.OBJECT, section: ".data", size: 8n },
    { name: "counter", type: STT.OBJECT, section: ".bss", size: 16n },
    { name: "puts", section: "undefined" },
  ],
  relocations: {
    ".text": [
      { offset: 9n, type: R_X86_64.PC32, symbol: "msg", addend: -4n },
      { offset: 14n, type: R_X86_64.PLT32, symbol: "puts", addend: -4n },
    ],
    ".data": [{ offset: 0n, type: R_X86_64["64"], symbol: "greet", addend: 0n }],
  },
};

const dir = join(BUILD_DIR, "elf-writer");
function written(): string {
  mkdirSync(dir, { recursive: true });
  const path = join(dir, `writer-${process.pid}.o`);
  writeFileSync(path, writeRelocatable(spec));
  return path;
}

test("readelf reads the written object without warnings", () => {
  const path = written();
  const r = spawnSync("readelf", ["-aW", path], { encoding: "utf8" });
  assert.equal(r.status, 0);
  assert.equal(r.stderr, "");
  assert.match(r.stdout, /Type:\s+REL \(Relocatable file\)/);
  assert.match(r.stdout, /R_X86_64_PLT32\s+0{16} puts - 4/);
  assert.match(r.stdout, /R_X86_64_PC32\s+0{16} msg - 4/);
  assert.doesNotMatch(r.stdout, /[Ww]arning/);
});

test("round trip through readElf: sections, symbols locals-first, relocations by name", () => {
  const f = readElf(writeRelocatable(spec));
  assert.deepEqual(
    f.sections.map((s) => s.name),
    [
      "",
      ".text",
      ".rela.text",
      ".rodata",
      ".data",
      ".rela.data",
      ".bss",
      ".note.GNU-stack",
      ".symtab",
      ".strtab",
      ".shstrtab",
    ],
  );
  assert.deepEqual(f.sectionByName(".text")!.data(), text);
  assert.equal(f.sectionByName(".bss")!.size, 16);
  assert.equal(f.sectionByName(".data")!.addralign, 8n);
  const syms = f.symbols();
  assert.deepEqual(
    syms.map((s) => s.name),
    ["", "writer.c", "msg", "answer", "greet", "greet_ptr", "counter", "puts"],
  );
  assert.equal(f.symbolTable()!.info, 3, "sh_info is the first global");
  assert.equal(syms[3]!.section.kind === "section" && f.section(syms[3]!.section.index).name, ".text");
  assert.equal(syms[1]!.section.kind, "absolute");
  assert.equal(syms[7]!.section.kind, "undefined");
  const relas = f.relocationSections();
  const text_ = relas.find((r) => f.section(r.target).name === ".text")!;
  assert.deepEqual(
    text_.relocations.map((r) => [r.offset, nameOf(R_X86_64, r.type), syms[r.symbol]!.name, r.addend]),
    [
      [9n, "PC32", "msg", -4n],
      [14n, "PLT32", "puts", -4n],
    ],
  );
  assert.equal(f.section(text_.symtab).name, ".symtab");
});

test("ld -r accepts the written object and keeps its symbols", () => {
  const path = written();
  const out = join(dir, `writer-r-${process.pid}.o`);
  const ld = spawnSync("ld", ["-r", "-o", out, path], { encoding: "utf8" });
  assert.equal(ld.status, 0, ld.stderr);
  assert.equal(ld.stderr, "");
  const f = readElf(readFileSync(out));
  for (const name of ["answer", "greet", "greet_ptr", "counter", "puts", "msg"]) {
    assert.ok(
      f.symbols().some((s) => s.name === name),
      `${name} survives ld -r`,
    );
  }
});

test("gcc links the written object into a program that runs", () => {
  const path = written();
  const exe = join(dir, `writer-main-${process.pid}`);
  const cc = spawnSync("gcc", ["-O2", "-o", exe, join(FIXTURES, "elf/writer-main.c"), path], {
    encoding: "utf8",
  });
  assert.equal(cc.status, 0, cc.stderr);
  assert.equal(cc.stderr, "", "no linker warnings");
  const stdout = execFileSync(exe, { encoding: "utf8" });
  assert.equal(stdout, "answer=42\nhello from the writer\nhello from the writer\ncounter=0,7\n");
});
