/**
 * The payload `xsplice build` makes, compared with one made by hand the way
 * Xen's test payloads are (`gcc -c` + `ld -r` + `objcopy --add-section`):
 * the same functions, the same notes, and funcs entries that differ only in
 * the fields build fills, with the values nm reads from the target.
 */
import assert from "node:assert/strict";
import { readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { BUILD_CFLAGS, type BuildResult, buildPayload } from "../../src/build/index.ts";
import { XspliceError } from "../../src/errors.ts";
import { readPayload } from "../../src/payload/index.ts";
import { INCLUDE, tool } from "../helpers/cc.ts";
import { buildTarget, fixture, type NmSymbol, nm, nmOne, outDir, readelfBuildIds } from "./_targets.ts";

let dir: string;
let target: string;
let built: BuildResult;
let hand: string;

/** A section's bytes, dumped by objcopy. */
function sectionBytes(file: string, section: string): Buffer {
  const out = join(dir, `dump-${Math.random().toString(36).slice(2)}`);
  tool("objcopy", ["-O", "binary", `--only-section=${section}`, file, out]);
  return readFileSync(out);
}

/** A GNU build-id note (gABI layout), as a file for objcopy. */
function noteFile(idHex: string): string {
  const id = Buffer.from(idHex, "hex");
  const head = Buffer.alloc(16);
  head.writeUInt32LE(4, 0);
  head.writeUInt32LE(id.length, 4);
  head.writeUInt32LE(3, 8);
  head.write("GNU\0", 12, "latin1");
  const file = join(dir, "note.bin");
  writeFileSync(file, Buffer.concat([head, id, Buffer.alloc((4 - (id.length % 4)) % 4)]));
  return file;
}

/** Relocations of `.rela.xsplice.funcs` as readelf prints them: offset → "symbol + addend". */
function funcsRelocations(file: string): Map<number, string> {
  const text = tool("readelf", ["-r", "-W", file]);
  const block = text.split("\n\n").find((b) => b.includes("'.rela.xsplice.funcs'")) ?? "";
  const out = new Map<number, string>();
  for (const line of block.split("\n")) {
    const m = /^([0-9a-f]{16}) +[0-9a-f]+ +R_X86_64_64 +[0-9a-f]+ (.+)$/.exec(line.trim());
    if (m) out.set(Number.parseInt(m[1]!, 16), m[2]!);
  }
  return out;
}

before(() => {
  dir = outDir();
  target = buildTarget("build-target");
  built = buildPayload({ sources: [fixture("fix.c")], target, out: join(dir, "built.xsplice") });
  const obj = join(dir, "hand.o");
  tool("gcc", ["-c", ...BUILD_CFLAGS, `-I${INCLUDE}`, "-o", obj, fixture("fix.c")]);
  hand = join(dir, "hand.xsplice");
  tool("ld", ["-r", "--build-id", "-o", hand, obj]);
  const note = noteFile(readelfBuildIds(target).get(".note.gnu.build-id")!);
  const args: string[] = [];
  for (const s of [".xsplice.target", ".xsplice.depends"])
    args.push("--add-section", `${s}=${note}`, "--set-section-flags", `${s}=alloc,readonly`);
  tool("objcopy", [...args, hand]);
});

after(() => rmSync(dir, { recursive: true, force: true }));

test("same functions, by name and size", () => {
  const fns = (syms: NmSymbol[]) =>
    syms
      .filter((s) => s.type === "t" || s.type === "T")
      .map((s) => `${s.name}/${s.size}`)
      .sort();
  assert.deepEqual(fns(nm(built.path)), fns(nm(hand)));
});

test("same target and depends notes", () => {
  for (const s of [".xsplice.target", ".xsplice.depends"]) {
    assert.deepEqual(sectionBytes(built.path, s), sectionBytes(hand, s), s);
  }
});

test("funcs entries: same relocations; the filled fields are nm's values", () => {
  const relocs = funcsRelocations(hand);
  assert.deepEqual(funcsRelocations(built.path), relocs);
  const expected = Buffer.from(sectionBytes(hand, ".xsplice.funcs"));
  const targetNm = nm(target);
  const handNm = nm(hand);
  const strings = sectionBytes(hand, ".rodata.str1.1");
  for (let base = 0; base < expected.length; base += 64) {
    // The name through its relocation ".rodata.str1.1 + addend", the replacement through new_addr's.
    const nameRef = /^\.rodata\.str1\.1 \+ ([0-9a-f]+)$/.exec(relocs.get(base + 32) ?? "");
    assert.ok(nameRef, `entry at ${base} names its function in .rodata.str1.1`);
    const at = Number.parseInt(nameRef[1]!, 16);
    const name = strings.subarray(at, strings.indexOf(0, at)).toString();
    const old = nmOne(targetNm, name);
    const repl = relocs
      .get(base)
      ?.replace(/^\.text\./, "")
      .replace(/ \+ 0$/, "");
    if (repl !== undefined) expected.writeBigUInt64LE(nmOne(handNm, repl).size, base + 8);
    expected.writeBigUInt64LE(old.addr, base + 16);
    expected.writeBigUInt64LE(old.size, base + 24);
  }
  assert.deepEqual(sectionBytes(built.path, ".xsplice.funcs"), expected);
});

test("without the filled fields the hand-made object is no payload (old_size 0)", () => {
  assert.throws(
    () => readPayload(readFileSync(hand)),
    (e: unknown) => e instanceof XspliceError && e.errno === "EINVAL" && /old_size is 0/.test(e.message),
  );
});
