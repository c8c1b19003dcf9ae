import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { compileC, tool } from "../../test/helpers/cc.ts";
import { compileUnitProducers, livePatchingWarning } from "./dwarf-producer.ts";
import { readElf } from "./file.ts";

/** The producers readelf prints, in .debug_info order: the oracle. */
function readelfProducers(file: string): string[] {
  const out = tool("readelf", ["--debug-dump=info", "-W", file]);
  return [
    ...out.matchAll(
      /DW_AT_producer\s*:\s*(?:\((?:strp|line_strp|string|indirect[^)]*)\)\s*)?(?:\(offset: 0x[0-9a-f]+\):\s*)?(.*)$/gm,
    ),
  ].map((m) => m[1]!.trim());
}

const SOURCE = "elf/lib.c";
const variants: { name: string; flags: string[] }[] = [
  { name: "dwarf5 strp/line_strp", flags: ["-O2", "-g", "-gdwarf-5", "-flive-patching=inline-clone"] },
  { name: "dwarf4 strp", flags: ["-O2", "-g", "-gdwarf-4"] },
  { name: "dwarf5 zlib-compressed", flags: ["-O2", "-g", "-gz=zlib", "-flive-patching=inline-clone"] },
  { name: "dwarf4 without recorded switches", flags: ["-O2", "-g", "-gdwarf-4", "-gno-record-gcc-switches"] },
];

for (const v of variants) {
  test(`producers agree with readelf: ${v.name}`, () => {
    const so = compileC({
      sources: [SOURCE],
      kind: "shared",
      flags: v.flags,
      name: `dwarf-${v.flags.join("")}`,
    });
    const scan = compileUnitProducers(readElf(readFileSync(so)));
    assert.equal(scan.reason, undefined);
    assert.ok(scan.producers.length >= 1);
    assert.deepEqual(scan.producers, readelfProducers(so));
  });
}

test("the warning follows -flive-patching=inline-clone", () => {
  const withFlag = compileC({
    sources: [SOURCE],
    kind: "shared",
    flags: ["-O2", "-g", "-flive-patching=inline-clone"],
    name: "dwarf-with",
  });
  const without = compileC({
    sources: [SOURCE],
    kind: "shared",
    flags: ["-O2", "-g"],
    name: "dwarf-without",
  });
  assert.equal(livePatchingWarning(readElf(readFileSync(withFlag)), "lib"), undefined);
  const w = livePatchingWarning(readElf(readFileSync(without)), "lib");
  assert.match(w ?? "", /lib was not built with -flive-patching=inline-clone/);
});

test("no DWARF: a warning saying it cannot tell, no exception", () => {
  const so = compileC({ sources: [SOURCE], kind: "shared", flags: ["-O2"], name: "dwarf-none" });
  const elf = readElf(readFileSync(so));
  assert.equal(compileUnitProducers(elf).reason, "no .debug_info");
  assert.match(livePatchingWarning(elf, "lib") ?? "", /no DWARF producer strings.*cannot tell/);
});

test("corrupted .debug_info and .debug_abbrev never throw", () => {
  const so = compileC({
    sources: [SOURCE],
    kind: "shared",
    flags: ["-O2", "-g", "-flive-patching=inline-clone"],
    name: "dwarf-fuzz",
  });
  const bytes = new Uint8Array(readFileSync(so));
  const info = readElf(bytes).sectionByName(".debug_info")!;
  const abbrev = readElf(bytes).sectionByName(".debug_abbrev")!;
  let seed = 7;
  const rand = (n: number) => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed % n;
  };
  let stopped = 0;
  for (let i = 0; i < 400; i++) {
    const copy = bytes.slice();
    const sec = i % 2 ? info : abbrev;
    for (let k = 0; k < 3; k++) copy[sec.offset + rand(Math.min(sec.size, 64))] = rand(256);
    const scan = compileUnitProducers(readElf(copy));
    assert.ok(Array.isArray(scan.producers));
    if (scan.reason) stopped++;
  }
  assert.ok(stopped > 0, "some mutations must stop the walk");
});
