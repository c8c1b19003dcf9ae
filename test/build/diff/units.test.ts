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

  test("static locals renumbered by a new one are matched by base name, in order", () => {
    const countsA = [...a.defs.keys()].filter((n) => n.startsWith("count."));
    const countsB = [...b.defs.keys()].filter((n) => n.startsWith("count."));
    assert.equal(countsA.length, 2);
    assert.equal(countsB.length, 3);
    // Whatever gcc numbered them, each original count has exactly one patched partner.
    const partners = countsB.map((n) => c.toOrig.get(n)).filter((n) => n !== undefined);
    assert.deepEqual([...partners].sort(), [...countsA].sort());
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
