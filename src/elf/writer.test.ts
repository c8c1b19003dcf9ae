import assert from "node:assert/strict";
import { test } from "node:test";
import { XspliceError } from "../errors.ts";
import { EM, SHF, SHT, STB } from "./defs.ts";
import { readElf } from "./file.ts";
import { appendBytes, type RelocatableSpec, writeRelocatable } from "./writer.ts";

const base: RelocatableSpec = {
  sections: [{ name: ".text", flags: SHF.ALLOC | SHF.EXECINSTR, data: Uint8Array.of(0xc3) }],
  symbols: [{ name: "f", section: ".text", size: 1n }],
};

function errno(spec: RelocatableSpec): string {
  try {
    writeRelocatable(spec);
    return "ok";
  } catch (e) {
    assert.ok(e instanceof XspliceError);
    return e.errno;
  }
}

test("writer input errors are EINVAL naming the problem", () => {
  assert.equal(errno(base), "ok");
  assert.equal(errno({ ...base, symbols: [{ name: "f", section: ".nope" }] }), "EINVAL");
  assert.equal(errno({ ...base, sections: [...base.sections, ...base.sections] }), "EINVAL");
  assert.equal(errno({ ...base, relocations: { ".nope": [] } }), "EINVAL");
  assert.equal(
    errno({ ...base, relocations: { ".text": [{ offset: 0n, type: 1, symbol: "g" }] } }),
    "EINVAL",
  );
  assert.equal(errno({ ...base, relocations: { ".text": [{ offset: 0n, type: 1, symbol: 5 }] } }), "EINVAL");
  assert.equal(errno({ ...base, sections: [{ name: ".text", addralign: 3 }] }), "EINVAL");
  assert.equal(errno({ ...base, sections: [{ name: ".a", link: ".b" }], symbols: [] }), "EINVAL");
  const twoF = { ...base, symbols: [base.symbols![0]!, { name: "f", section: ".text", bind: STB.LOCAL }] };
  assert.equal(
    errno({ ...twoF, relocations: { ".text": [{ offset: 0n, type: 1, symbol: "f" }] } }),
    "EINVAL",
  );
  assert.throws(() => writeRelocatable({ ...base, symbols: [{ name: "a\0b", section: ".text" }] }), /NUL/);
});

test("relocations may name a symbol by its index in spec.symbols, which survives reordering", () => {
  const f = readElf(
    writeRelocatable({
      sections: [{ name: ".data", data: new Uint8Array(16) }],
      symbols: [
        { name: "g", section: ".data" },
        { name: "", section: ".data", bind: STB.LOCAL, type: 3 },
      ],
      relocations: { ".data": [{ offset: 8n, type: 1, symbol: 1 }] },
    }),
  );
  const r = f.relocationSections()[0]!.relocations[0]!;
  assert.equal(r.symbol, 1, "the local moved to index 1");
  assert.equal(f.symbols()[r.symbol]!.type, 3);
});

test("machine, NOBITS, link/info by name and extra sections come through", () => {
  const f = readElf(
    writeRelocatable({
      machine: EM.AARCH64,
      sections: [
        { name: ".bss", size: 4096, addralign: 64, flags: SHF.ALLOC | SHF.WRITE },
        {
          name: ".group",
          type: SHT.GROUP,
          data: new Uint8Array(8),
          link: ".symtab",
          info: ".bss",
          entsize: 4,
        },
      ],
    }),
  );
  assert.equal(f.header.machine, EM.AARCH64);
  assert.equal(f.sectionByName(".bss")!.type, SHT.NOBITS);
  assert.equal(f.sectionByName(".bss")!.size, 4096);
  const g = f.sectionByName(".group")!;
  assert.equal(f.section(g.link).name, ".symtab");
  assert.equal(f.section(g.info).name, ".bss");
  assert.equal(g.entsize, 4);
  assert.deepEqual(f.symbols().length, 1, "only the null symbol");
});

test("appendBytes keeps the ELF readable and the tail intact", () => {
  const elf = writeRelocatable(base);
  const tail = new TextEncoder().encode("~Module signature appended~\n");
  const both = appendBytes(elf, tail);
  assert.equal(both.length, elf.length + tail.length);
  assert.deepEqual(both.subarray(elf.length), tail);
  assert.deepEqual(
    readElf(both).sections.map((s) => s.name),
    readElf(elf).sections.map((s) => s.name),
  );
});
