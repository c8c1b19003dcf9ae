/**
 * The differ's parts on objects gcc compiles here (SPEC §13): correlation of
 * renumbered static locals, relocation-aware comparison (same bytes but
 * another referent is a change; other bytes only in relocation fields is
 * none), the line-number test, and the refusal of objects built without
 * `-ffunction-sections`.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, test } from "node:test";
import {
  classify,
  compareDefs,
  correlate,
  inlinedInto,
  ObjectView,
  onlyLineNumbers,
  origSide,
  patchedSide,
  shapeOf,
} from "../../../src/build/diff/index.ts";
import { XspliceError } from "../../../src/errors.ts";
import { compileC } from "../../helpers/cc.ts";

const FLAGS = ["-O2", "-ffunction-sections", "-fdata-sections", "-fno-omit-frame-pointer"];

function view(source: string, flags = FLAGS): ObjectView {
  const path = compileC({ sources: [`diff/units/${source}`], kind: "obj", flags });
  return new ObjectView(path, readFileSync(path));
}

describe("correlate", () => {
  const a = view("renumber-a.c");
  const b = view("renumber-b.c");
  const c = correlate(a, b);

  test("static locals renumbered by a new one go with their function; the new one has no partner", () => {
    /** The static local function `f` of `v` refers to. */
    const localOf = (v: ObjectView, f: string): string => {
      const d = v.defs.get(f)!;
      const r = v.relocationsIn(d.section, d.sym.value, d.sym.size)[0]!;
      const ref = v.referent(r);
      assert.equal(ref.kind, "def");
      return ref.kind === "def" ? ref.def.sym.name : "";
    };
    for (const f of ["tick", "tock"]) {
      assert.match(localOf(b, f), /^count\.\d+$/);
      assert.equal(c.toOrig.get(localOf(b, f)), localOf(a, f), f);
    }
    assert.equal(c.toOrig.get(localOf(b, "fresh")), undefined, "fresh()'s count is new");
  });

  test("functions by name; a new one has no partner", () => {
    for (const f of ["tick", "tock", "pick", "name"]) assert.equal(c.toOrig.get(f), f);
    assert.equal(c.toOrig.get("fresh"), undefined);
    assert.equal(c.toOrig.get("first"), undefined);
  });

  test("shapeOf takes gcc's numbers out", () => {
    assert.equal(shapeOf("count.12"), "count.#");
    assert.equal(shapeOf("f.constprop.0.isra.3"), "f.constprop.#.isra.#");
    assert.equal(shapeOf("f.cold"), "f.cold");
  });
});

describe("compare, relocation-aware", () => {
  const a = view("renumber-a.c");
  const b = view("renumber-b.c");
  const c = correlate(a, b);
  const o = origSide(a);
  const p = patchedSide(b, c);
  const both = (name: string) => compareDefs(o, a.defs.get(name)!, p, b.defs.get(name)!);

  test("pick(): the same bytes, but it now reads b instead of a: changed", () => {
    assert.deepEqual(a.bytesOf(a.defs.get("pick")!), b.bytesOf(b.defs.get("pick")!), "raw bytes are equal");
    const d = both("pick");
    assert.ok(d, "a raw-bytes comparison would call it unchanged");
    assert.equal(d.bytes, false);
    assert.match(d.reason, /now to b$/);
  });

  test("name(): its string moved in .rodata.str but is the same text: unchanged", () => {
    assert.equal(both("name"), undefined);
  });

  test("tick() and tock() keep their (renumbered) static locals: unchanged", () => {
    assert.equal(both("tick"), undefined);
    assert.equal(both("tock"), undefined);
  });

  test("classify gives the verdicts the comparisons imply", () => {
    const v = classify(a, b);
    const by = Object.fromEntries(v.funcs.map((f) => [f.name, f.status]));
    assert.deepEqual(by, {
      fresh: "new",
      tick: "unchanged",
      tock: "unchanged",
      pick: "changed",
      first: "new",
      name: "unchanged",
    });
    assert.deepEqual(v.refused, []);
  });
});

describe("line numbers", () => {
  test("a function that only moved down is line-only; a real change is not", () => {
    const a = view("line-a.c");
    for (const [other, expected] of [
      ["line-b.c", true],
      ["line-c.c", false],
    ] as const) {
      const b = view(other);
      const v = classify(a, b);
      const where = v.funcs.find((f) => f.name === "where")!;
      assert.equal(where.status, "changed", other);
      assert.equal(where.lineOnly, expected, other);
    }
  });

  test("only mov immediates count: add $imm32 is a real change", () => {
    const mov = (n: number) => Uint8Array.from([0xba, n, 0, 0, 0, 0xc3]); // mov $n, %edx; ret
    const add = (n: number) => Uint8Array.from([0x05, n, 0, 0, 0, 0xc3]); // add $n, %eax; ret
    assert.equal(onlyLineNumbers(mov(10), mov(12), [1]), true);
    assert.equal(onlyLineNumbers(add(10), add(12), [1]), false);
    assert.equal(onlyLineNumbers(mov(10), mov(12), []), false);
  });
});

test("an object without -ffunction-sections is refused, naming the shared section", () => {
  assert.throws(
    () => view("renumber-a.c", ["-O2"]),
    (e: unknown) =>
      e instanceof XspliceError &&
      e.errno === "EINVAL" &&
      /share section \.text; build with -ffunction-sections/.test(e.message),
  );
});

describe("inlinedInto: which functions hold inlined copies of which (DWARF)", () => {
  const source = "diff/inlined-everywhere/prog.c";
  test("with -g: scale, which has no symbol, is in compute and compute_more", () => {
    const path = compileC({ sources: [source], kind: "obj", flags: [...FLAGS, "-g"] });
    const v = new ObjectView(path, readFileSync(path));
    assert.equal(v.defs.has("scale"), false);
    const map = inlinedInto(v);
    assert.deepEqual([...(map.get("scale") ?? [])].sort(), ["compute", "compute_more"]);
  });
  test("without debug info: nothing known, no error", () => {
    const path = compileC({ sources: [source], kind: "obj", flags: [...FLAGS, "-g0"] });
    assert.equal(inlinedInto(new ObjectView(path, readFileSync(path))).size, 0);
  });
  test("-gdwarf-4 gives the same answer as the default DWARF 5", () => {
    const path = compileC({ sources: [source], kind: "obj", flags: [...FLAGS, "-gdwarf-4"] });
    const map = inlinedInto(new ObjectView(path, readFileSync(path)));
    assert.deepEqual([...(map.get("scale") ?? [])].sort(), ["compute", "compute_more"]);
  });
});
