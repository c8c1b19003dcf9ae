import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { compileC } from "../../test/helpers/cc.ts";
import { XspliceError } from "../errors.ts";
import { ET, SHT, STT } from "./defs.ts";
import { readElf } from "./file.ts";

const obj = () =>
  readFileSync(
    compileC({ sources: ["elf/objects.c"], kind: "obj", flags: ["-O2", "-ffunction-sections", "-fcommon"] }),
  );

function errnoOf(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof XspliceError, `not an XspliceError: ${e}`);
    return e.errno;
  }
  return "ok";
}

test("readElf opens a gcc object: header, named sections, symbols, relocations", () => {
  const f = readElf(obj());
  assert.equal(f.header.type, ET.REL);
  assert.equal(f.sections.length, f.header.shnum);
  assert.equal(f.sectionByName(".text.add")?.type, SHT.PROGBITS);
  const add = f.symbols().find((s) => s.name === "add");
  assert.equal(add?.type, STT.FUNC);
  assert.equal(add?.section.kind, "section");
  const addSection = add?.section.kind === "section" ? f.section(add.section.index) : undefined;
  assert.equal(addSection?.name, ".text.add");
  assert.ok(f.relocationSections().some((r) => f.section(r.target).name === ".text.startup.main"));
  assert.equal(f.symbols(), f.symbols(), "symbols are cached");
});

test("section data is a view on the file's bytes, empty for NOBITS", () => {
  const bytes = obj();
  const f = readElf(bytes);
  const text = f.sectionByName(".text.add")!;
  assert.equal(text.data().buffer, bytes.buffer);
  assert.equal(text.data().byteOffset, bytes.byteOffset + text.offset);
  const bss = f.sections.find((s) => s.type === SHT.NOBITS && s.size > 0)!;
  assert.equal(bss.data().length, 0);
});

test("readElf rejects short files and bad magic with EINVAL, other classes with EOPNOTSUPP", () => {
  const bytes = obj();
  assert.equal(
    errnoOf(() => readElf(new Uint8Array(0))),
    "EINVAL",
  );
  assert.equal(
    errnoOf(() => readElf(bytes.subarray(0, 40))),
    "EINVAL",
  );
  const bad = Uint8Array.from(bytes);
  bad[1] = 0x45 + 1;
  assert.equal(
    errnoOf(() => readElf(bad)),
    "EINVAL",
  );
  const c32 = Uint8Array.from(bytes);
  c32[4] = 1;
  assert.equal(
    errnoOf(() => readElf(c32)),
    "EOPNOTSUPP",
  );
  const msb = Uint8Array.from(bytes);
  msb[5] = 2;
  assert.equal(
    errnoOf(() => readElf(msb)),
    "EOPNOTSUPP",
  );
});

test("section() names an out-of-range index", () => {
  const f = readElf(obj());
  assert.throws(
    () => f.section(f.sections.length),
    (e: XspliceError) => e.errno === "EINVAL" && /index \d+/.test(e.message),
  );
  assert.throws(() => f.section(-1), XspliceError);
});
