/**
 * `buildPayload` (SPEC §11) against real targets built by gcc, with nm and
 * readelf as oracles: filled entries, notes, `.xsplice.symbols`, statics,
 * stacking, CET targets and every error case.
 */
import assert from "node:assert/strict";
import { copyFileSync, existsSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { type BuildOptions, type BuildResult, buildPayload } from "../../src/build/index.ts";
import { XspliceError } from "../../src/errors.ts";
import { type Payload, readPayload } from "../../src/payload/index.ts";
import { tool } from "../helpers/cc.ts";
import { buildTarget, fixture, type NmSymbol, nm, nmOne, outDir, readelfBuildIds } from "./_targets.ts";

let dir: string;
let target: string;
let cetTarget: string;
let targetNm: NmSymbol[];
let fix: BuildResult;
let fixPayload: Payload;

function build(opts: Omit<BuildOptions, "target" | "out"> & { target?: string; out?: string }): BuildResult {
  const out = opts.out ?? join(dir, `${Math.random().toString(36).slice(2)}.xsplice`);
  return buildPayload({ target, ...opts, out });
}

/** The XspliceError a build throws; asserts its errno, that the message is one line, and no output appeared. */
function buildError(opts: Omit<BuildOptions, "out">, errno: string): XspliceError {
  const out = join(dir, `failed-${Math.random().toString(36).slice(2)}.xsplice`);
  let caught: unknown;
  try {
    buildPayload({ ...opts, out });
  } catch (err) {
    caught = err;
  }
  assert.ok(caught instanceof XspliceError, `expected an XspliceError, got ${String(caught)}`);
  assert.equal(caught.errno, errno, caught.message);
  assert.doesNotMatch(caught.message, /\n/, "error messages are one line");
  assert.equal(existsSync(out), false, "a failed build writes nothing");
  return caught;
}

before(() => {
  dir = outDir();
  target = buildTarget("build-target");
  cetTarget = buildTarget("build-target-cet", ["-fcf-protection=full"]);
  targetNm = nm(target);
  fix = build({ sources: [fixture("fix.c")], out: join(dir, "fix.xsplice"), name: "fix" });
  fixPayload = readPayload(readFileSync(fix.path));
});

after(() => rmSync(dir, { recursive: true, force: true }));

describe("funcs entries", () => {
  test("old_addr and old_size are the target's nm -S values, new_size the replacement's", () => {
    const payloadNm = nm(fix.path);
    const byName = new Map(fixPayload.funcs.map((f) => [f.name, f]));
    assert.deepEqual([...byName.keys()].sort(), ["compute", "debug_trap", "parse_header"]);
    for (const [old, repl] of [
      ["parse_header", "fixed_parse_header"],
      ["compute", "fixed_compute"],
    ] as const) {
      const f = byName.get(old)!;
      const o = nmOne(targetNm, old);
      assert.equal(f.oldAddr, o.addr, `${old} old_addr`);
      assert.equal(BigInt(f.oldSize), o.size, `${old} old_size`);
      assert.equal(BigInt(f.newSize), nmOne(payloadNm, repl).size, `${old} new_size`);
      assert.equal(f.nop, false);
    }
    const nop = byName.get("debug_trap")!;
    assert.equal(nop.nop, true);
    assert.equal(nop.newSize, 4, "XSPLICE_NOP keeps its byte count");
    assert.equal(nop.oldAddr, nmOne(targetNm, "debug_trap").addr);
  });

  test("the result describes the entries the file holds", () => {
    const fromFile = fixPayload.funcs.map((f) => ({
      name: f.name,
      oldAddr: f.oldAddr,
      oldSize: f.oldSize,
      newSize: f.newSize,
      nop: f.nop,
    }));
    const fromResult = fix.funcs.map(({ replacement: _r, ...rest }) => rest);
    assert.deepEqual(fromResult, fromFile);
  });

  test("a static replaced by file-qualified name gets that file's function", () => {
    const r = build({ sources: [fixture("stack.c")], depends: fix.path });
    const f = readPayload(readFileSync(r.path)).funcs.find((x) => x.name === "target-util.c#helper");
    assert.ok(f, "entry for target-util.c#helper");
    const util = nmOne(targetNm, "helper", "target-util.c");
    assert.notEqual(util.addr, nmOne(targetNm, "helper", "target-main.c").addr);
    assert.equal(f.oldAddr, util.addr);
    assert.equal(BigInt(f.oldSize), util.size);
  });

  test("entries and hooks of several sources end up in one payload", () => {
    const r = build({ sources: [fixture("hooks-all.c"), fixture("short-plain.c")] });
    const p = readPayload(readFileSync(r.path));
    assert.deepEqual(
      p.funcs.map((f) => f.name),
      ["short_plain"],
    );
    assert.equal(p.hooks.load.length, 2);
    assert.equal(p.hooks.unload.length, 1);
    for (const k of ["preapply", "postapply", "prerevert", "postrevert", "apply", "revert"] as const) {
      assert.ok(p.hooks[k], `${k} hook present`);
    }
    // The last entry: the builder saw every compile unit of the target carry -flive-patching (SPEC §12).
    assert.deepEqual(p.metadata, {
      cve: "CVE-2026-0002",
      author: "test",
      "target-flags": "-flive-patching=inline-clone",
    });
  });

  test("a hooks-only payload builds (SPEC §1: funcs required unless hooks)", () => {
    const r = build({ sources: [fixture("hooks-all.c")] });
    assert.deepEqual(r.funcs, []);
    assert.equal(readPayload(readFileSync(r.path)).hooks.load.length, 2);
  });
});

describe("notes and build-id", () => {
  test("target and depends notes hold the target's build-id as readelf -n prints it", () => {
    const targetId = readelfBuildIds(target).get(".note.gnu.build-id");
    assert.ok(targetId);
    const ids = readelfBuildIds(fix.path);
    assert.equal(ids.get(".xsplice.target"), targetId);
    assert.equal(ids.get(".xsplice.depends"), targetId);
    assert.equal(ids.get(".note.gnu.build-id"), fix.buildId);
    assert.equal(fix.target, targetId);
    assert.notEqual(fix.buildId, targetId);
  });

  test("the notes are allocated, read-only SHT_NOTE sections", () => {
    const sections = tool("readelf", ["-S", "-W", fix.path]);
    for (const name of [".xsplice.target", ".xsplice.depends", ".note.gnu.build-id"]) {
      const line = sections.split("\n").find((l) => l.includes(` ${name} `));
      assert.ok(line, name);
      assert.match(line, /\bNOTE\b/, `${name} type`);
      assert.match(line, / A +\d/, `${name} flags are exactly A`);
    }
  });

  test("the same inputs give the same bytes; other metadata a different build-id", () => {
    const again = build({ sources: [fixture("fix.c")], name: "fix" });
    assert.deepEqual(readFileSync(again.path), readFileSync(fix.path));
    const other = build({ sources: [fixture("fix.c")], name: "fix-2" });
    assert.notEqual(other.buildId, fix.buildId);
  });

  test("--depends stacks on the previous payload's build-id", () => {
    const r = build({ sources: [fixture("stack.c")], depends: fix.path });
    const ids = readelfBuildIds(r.path);
    assert.equal(ids.get(".xsplice.depends"), fix.buildId);
    assert.equal(ids.get(".xsplice.target"), fix.target);
    assert.notEqual(r.buildId, fix.buildId);
    // A third payload stacks on the second.
    const third = build({ sources: [fixture("short-plain.c")], depends: r.path });
    assert.equal(readelfBuildIds(third.path).get(".xsplice.depends"), r.buildId);
  });

  test("--depends on a payload for another target is EINVAL", () => {
    const cetFix = build({ sources: [fixture("fix.c")], target: cetTarget });
    const e = buildError({ sources: [fixture("stack.c")], target, depends: cetFix.path }, "EINVAL");
    assert.match(e.message, /built for target/);
  });

  test("a stripped copy of the target keeps the build-id the payload names", () => {
    const stripped = join(dir, "target-stripped");
    tool("strip", ["-o", stripped, target]);
    assert.equal(readelfBuildIds(stripped).get(".note.gnu.build-id"), fix.target);
    assert.doesNotMatch(tool("readelf", ["-S", "-W", stripped]), /\.symtab/);
  });
});

describe(".xsplice.symbols", () => {
  test("lists every target symbol the code refers to, at its nm address", () => {
    const expected = [
      { name: "compute", addr: nmOne(targetNm, "compute").addr },
      { name: "counter", addr: nmOne(targetNm, "counter").addr },
      { name: "target-main.c#hits", addr: nmOne(targetNm, "hits", "target-main.c").addr },
      { name: "target-util.c#helper", addr: nmOne(targetNm, "helper", "target-util.c").addr },
    ];
    const byName = (a: { name: string }, b: { name: string }) => a.name.localeCompare(b.name);
    assert.deepEqual([...fixPayload.targetSymbols].sort(byName), expected);
    assert.deepEqual([...fix.symbols].sort(byName), expected);
  });

  test("symbols the target does not define are left to the loader", () => {
    assert.ok(fix.external.length > 0, "fix.c calls strlen, which libc defines");
    const defined = new Set(targetNm.map((s) => s.name));
    for (const name of fix.external) assert.equal(defined.has(name), false, `${name} is not in the target`);
  });

  test("every entry's name is a relocation, like the funcs' names", () => {
    const relocs = tool("readelf", ["-r", "-W", fix.path]);
    const section = relocs.split("\n\n").find((s) => s.includes("'.rela.xsplice.symbols'"));
    assert.ok(section);
    assert.equal((section.match(/R_X86_64_64/g) ?? []).length, fix.symbols.length);
  });
});

describe("CET targets (endbr64)", () => {
  test("the CET target's functions start with endbr64, and build fills them", () => {
    const r = build({ sources: [fixture("fix.c")], target: cetTarget });
    const cetNm = nm(cetTarget);
    const dump = tool("objdump", ["-d", "--no-show-raw-insn", cetTarget]);
    assert.match(dump, /<parse_header>:\n\s+[0-9a-f]+:\s+endbr64/);
    const f = r.funcs.find((x) => x.name === "parse_header")!;
    assert.equal(f.oldAddr, nmOne(cetNm, "parse_header").addr);
    assert.equal(BigInt(f.oldSize), nmOne(cetNm, "parse_header").size);
  });

  test("a 7-byte function starting with endbr64 is too small (needs 9); 6 bytes without is enough", () => {
    for (const t of [target, cetTarget]) {
      const e = buildError({ sources: [fixture("short-endbr.c")], target: t }, "EINVAL");
      assert.match(e.message, /short_endbr.*7 bytes.*needs 9/);
      assert.equal(build({ sources: [fixture("short-plain.c")], target: t }).funcs[0]?.oldSize, 6);
    }
  });
});

describe("errors", () => {
  test("a source that does not compile: EINVAL with the compiler's diagnostic", () => {
    const e = buildError({ sources: [fixture("broken.c")], target }, "EINVAL");
    assert.match(e.message, /broken\.c:\d+:\d+: error: .*undeclared_variable/);
  });

  test("a hook of the wrong type does not compile", () => {
    const e = buildError({ sources: [fixture("bad-hook.c")], target }, "EINVAL");
    assert.match(e.message, /not_a_load_hook does not have the signature of xsplice_load_hook_t/);
  });

  test("two single hooks of one kind: EINVAL", () => {
    const e = buildError({ sources: [fixture("fix.c"), fixture("second-preapply.c")], target }, "EINVAL");
    assert.match(e.message, /\.xsplice\.hooks\.preapply size 16/);
  });

  test("old function not in the target: ENOENT naming it", () => {
    const e = buildError({ sources: [fixture("missing.c")], target }, "ENOENT");
    assert.match(e.message, /no function no_such_function in target/);
  });

  test("old function too small for a trampoline: EINVAL", () => {
    const e = buildError({ sources: [fixture("tiny.c")], target }, "EINVAL");
    assert.match(e.message, /tiny.*1 bytes, too small/);
  });

  test("a bare static name two files define: EINVAL asking for file.c#name", () => {
    const e = buildError({ sources: [fixture("ambiguous.c")], target }, "EINVAL");
    assert.match(
      e.message,
      /'helper' is ambiguous in .*: 2 statics \(target-main\.c, target-util\.c\); name one as "file\.c#helper"/,
    );
  });

  test("target without a build-id: EINVAL", () => {
    const noId = buildTarget("build-target-noid", ["-Wl,--build-id=none"]);
    assert.equal(readelfBuildIds(noId).size, 0);
    const e = buildError({ sources: [fixture("fix.c")], target: noId }, "EINVAL");
    assert.match(e.message, /no GNU build-id/);
  });

  test("target that is not ELF: EINVAL; missing: ENOENT; a payload as target: EINVAL", () => {
    const e = buildError({ sources: [fixture("fix.c")], target: fixture("fix.c") }, "EINVAL");
    assert.match(e.message, /is not a readable ELF object/);
    buildError({ sources: [fixture("fix.c")], target: join(dir, "no-such-target") }, "ENOENT");
    const rel = buildError({ sources: [fixture("fix.c")], target: fix.path }, "EINVAL");
    assert.match(rel.message, /ET_REL, not an executable/);
  });

  test("the target's stripped copy has no symbols to fill entries from: ENOENT", () => {
    const stripped = join(dir, "stripped-for-build");
    tool("strip", ["-o", stripped, target]);
    buildError({ sources: [fixture("fix.c")], target: stripped }, "ENOENT");
  });

  test("a compiler that does not exist: ENOENT; no sources: EINVAL", () => {
    const e = buildError({ sources: [fixture("fix.c")], target, cc: "/nonexistent/cc" }, "ENOENT");
    assert.match(e.message, /program '\/nonexistent\/cc' not found/);
    buildError({ sources: [], target }, "EINVAL");
  });

  test("a failed build leaves an existing output untouched", () => {
    const out = join(dir, "kept.xsplice");
    copyFileSync(fix.path, out);
    assert.throws(() => buildPayload({ sources: [fixture("missing.c")], target, out }), XspliceError);
    assert.deepEqual(readFileSync(out), readFileSync(fix.path));
  });
});
