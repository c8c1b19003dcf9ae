/**
 * readPayload on payloads built from C with gcc + ld + objcopy, checked field
 * by field against readelf and nm (the oracles): entries, names, sizes,
 * relocations, notes, hooks, metadata, both formats.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, test } from "node:test";
// Through the package name, as users import it (package.json "exports").
import { type Payload, readPayload, type SymbolRef } from "xsplice";
import { tool } from "../helpers/cc.ts";
import { buildFixturePayload, FIXTURE_TARGET_ID, readelfBuildId } from "../helpers/payload-fixtures.ts";

/** One line of `readelf -rW` for a given relocation section: offset, type, symbol (or section) name, addend. */
interface ReadelfRela {
  offset: bigint;
  type: string;
  symbol: string;
  addend: bigint;
}

function readelfRelocations(path: string, section: string): ReadelfRela[] {
  const out = tool("readelf", ["-rW", path]);
  const start = out.indexOf(`Relocation section '${section}'`);
  assert.ok(start >= 0, `readelf shows no ${section}`);
  const body = out.slice(start).split("\n\n")[0] ?? "";
  const rows: ReadelfRela[] = [];
  for (const line of body.split("\n")) {
    const m = /^([0-9a-f]{16})\s+[0-9a-f]+\s+(\S+)\s+[0-9a-f]+\s+(\S+)\s+([+-])\s+([0-9a-f]+)$/.exec(
      line.trim(),
    );
    if (!m) continue;
    const addend = BigInt(`0x${m[5]}`);
    rows.push({
      offset: BigInt(`0x${m[1]}`),
      type: m[2] ?? "",
      symbol: m[3] ?? "",
      addend: m[4] === "-" ? -addend : addend,
    });
  }
  return rows;
}

/** A section's bytes as `readelf -x` dumps them. */
function readelfHex(path: string, section: string): Uint8Array {
  const out = tool("readelf", ["-x", section, path]);
  const bytes: number[] = [];
  for (const line of out.split("\n")) {
    const m = /^\s+0x[0-9a-f]+ ((?:[0-9a-f]{2,8} ){1,4})/.exec(line);
    if (!m?.[1]) continue;
    for (const word of m[1].trim().split(" ")) {
      for (let i = 0; i < word.length; i += 2) bytes.push(Number.parseInt(word.slice(i, i + 2), 16));
    }
  }
  return Uint8Array.from(bytes);
}

/** `readelf -p SECTION`: offset → string. */
function readelfStrings(path: string, section: string): Map<number, string> {
  const map = new Map<number, string>();
  for (const line of tool("readelf", ["-p", section, path]).split("\n")) {
    const m = /^\s+\[\s*([0-9a-f]+)\]\s{2}(.*)$/.exec(line);
    if (m?.[1] !== undefined) map.set(Number.parseInt(m[1], 16), m[2] ?? "");
  }
  return map;
}

/** `nm` of the payload: name → [type letter, value]. */
function nmSymbols(path: string): Map<string, { kind: string; value: bigint }> {
  const map = new Map<string, { kind: string; value: bigint }>();
  for (const line of tool("nm", [path]).split("\n")) {
    const m = /^([0-9a-f]{16})?\s+(\S)\s+(\S+)$/.exec(line);
    if (m?.[3]) map.set(m[3], { kind: m[2] ?? "", value: BigInt(`0x${m[1] ?? "0"}`) });
  }
  return map;
}

/** How readelf names a relocation's symbol: the symbol name, or the section name for a section symbol. */
function readelfName(p: Payload, ref: SymbolRef): string {
  if (ref.symbol.name !== "") return ref.symbol.name;
  assert.equal(ref.symbol.section.kind, "section");
  return ref.symbol.section.kind === "section" ? p.elf.section(ref.symbol.section.index).name : "";
}

function u64(b: Uint8Array, at: number): bigint {
  return new DataView(b.buffer, b.byteOffset, b.byteLength).getBigUint64(at, true);
}
function u32(b: Uint8Array, at: number): number {
  return new DataView(b.buffer, b.byteOffset, b.byteLength).getUint32(at, true);
}

/** The string a (section symbol + addend) relocation points at, by readelf -p. */
function oracleString(path: string, rel: ReadelfRela): string | undefined {
  return readelfStrings(path, rel.symbol).get(Number(rel.addend));
}

describe("native .xsplice payload (test/fixtures/payload/xsplice-basic.c)", () => {
  const path = buildFixturePayload({ source: "payload/xsplice-basic.c" });
  const p = readPayload(new Uint8Array(readFileSync(path)));

  test("format, machine and the three build-ids match readelf", () => {
    assert.equal(p.format, "xsplice");
    assert.equal(p.machine, 62);
    assert.deepEqual(p.buildId, readelfBuildId(path));
    const target = readelfHex(path, ".xsplice.target");
    const depends = readelfHex(path, ".xsplice.depends");
    // Note header: namesz 4, descsz, type 3, "GNU\0", then the id.
    assert.equal(u32(target, 0), 4);
    assert.equal(u32(target, 8), 3);
    assert.deepEqual(p.target, target.subarray(16, 16 + u32(target, 4)));
    assert.deepEqual(p.depends, depends.subarray(16, 16 + u32(depends, 4)));
    assert.deepEqual(p.target, FIXTURE_TARGET_ID);
  });

  test("each funcs entry matches the raw section and its relocations", () => {
    const raw = readelfHex(path, ".xsplice.funcs");
    const relas = readelfRelocations(path, ".rela.xsplice.funcs");
    const nm = nmSymbols(path);
    assert.equal(p.funcs.length, raw.length / 64);
    assert.equal(p.funcs.length, 3);
    for (const f of p.funcs) {
      const base = f.index * 64;
      assert.equal(f.entryOffset, base);
      assert.equal(BigInt(f.newSize), u64(raw, base + 8), `entry ${f.index} new_size`);
      assert.equal(f.oldAddr, u64(raw, base + 16), `entry ${f.index} old_addr`);
      assert.equal(BigInt(f.oldSize), u64(raw, base + 24), `entry ${f.index} old_size`);
      const nameRel = relas.find((r) => r.offset === BigInt(base + 32));
      assert.ok(nameRel, `readelf shows the name relocation of entry ${f.index}`);
      assert.equal(f.name, oracleString(path, nameRel));
      const newRel = relas.find((r) => r.offset === BigInt(base));
      assert.equal(f.nop, newRel === undefined);
      if (newRel === undefined) {
        assert.equal(f.newSymbol, undefined);
        assert.equal(u64(raw, base), 0n);
        continue;
      }
      assert.ok(f.newSymbol);
      assert.equal(newRel.type, "R_X86_64_64");
      assert.equal(readelfName(p, f.newSymbol), newRel.symbol);
      assert.equal(f.newSymbol.addend, newRel.addend);
      if (f.newSymbol.symbol.name !== "") {
        // A global replacement: nm agrees on its kind and value.
        assert.equal(nm.get(f.newSymbol.symbol.name)?.kind, "T");
        assert.equal(nm.get(f.newSymbol.symbol.name)?.value, f.newSymbol.symbol.value);
      }
    }
    assert.deepEqual(
      p.funcs.map((f) => f.name),
      ["parse_header", "sum.c#sum_values", "debug_trap"],
    );
  });

  test("hooks come from the relocations of their sections", () => {
    for (const [section, refs] of [
      [".xsplice.hooks.load", p.hooks.load],
      [".xsplice.hooks.unload", p.hooks.unload],
      [".xsplice.hooks.preapply", p.hooks.preapply ? [p.hooks.preapply] : []],
      [".xsplice.hooks.postrevert", p.hooks.postrevert ? [p.hooks.postrevert] : []],
    ] as const) {
      const relas = readelfRelocations(path, `.rela${section}`);
      assert.equal(refs.length, relas.length, section);
      for (const [i, r] of relas.entries()) {
        const ref = refs[i];
        assert.ok(ref);
        assert.equal(r.offset, BigInt(i * 8));
        assert.equal(readelfName(p, ref), r.symbol);
        assert.equal(ref.addend, r.addend);
      }
    }
    assert.equal(p.hooks.load.length, 2);
    assert.equal(p.hooks.postapply, undefined);
    assert.equal(p.hooks.apply, undefined);
  });

  test("metadata is .modinfo in order, duplicates joined", () => {
    const strings = [...readelfStrings(path, ".modinfo").values()];
    assert.deepEqual(strings, [
      "cve=CVE-2026-0001",
      "author=xsplice tests",
      "cve=CVE-2026-0002",
      "version=1.2",
    ]);
    assert.deepEqual(Object.keys(p.metadata), ["cve", "author", "version"]);
    assert.equal(p.metadata["cve"], "CVE-2026-0001\nCVE-2026-0002");
    assert.equal(p.metadata["version"], "1.2");
  });

  test("target symbols: addresses from the section, names through relocations", () => {
    const raw = readelfHex(path, ".xsplice.symbols");
    const relas = readelfRelocations(path, ".rela.xsplice.symbols");
    assert.equal(p.targetSymbols.length, raw.length / 16);
    for (const [i, s] of p.targetSymbols.entries()) {
      assert.equal(s.addr, u64(raw, i * 16));
      const rel = relas.find((r) => r.offset === BigInt(i * 16 + 8));
      assert.ok(rel);
      assert.equal(s.name, oracleString(path, rel));
    }
    assert.deepEqual(
      p.targetSymbols.map((s) => s.name),
      ["helper_in_target", "table_in_target"],
    );
  });

  test("own writable data: the .bss counter counts, funcs and hooks do not", () => {
    assert.equal(p.hasOwnWritableData, true);
    assert.equal(p.signed, false);
    assert.equal(p.signature, undefined);
  });
});

describe("hooks-only payload (test/fixtures/payload/hooks-only.c)", () => {
  const path = buildFixturePayload({ source: "payload/hooks-only.c" });
  const p = readPayload(new Uint8Array(readFileSync(path)));

  test("no funcs section is fine when hooks exist, and there is no own data", () => {
    assert.equal(tool("readelf", ["-SW", path]).includes(".xsplice.funcs"), false);
    assert.deepEqual(p.funcs, []);
    assert.ok(p.hooks.preapply && p.hooks.apply && p.hooks.revert);
    assert.deepEqual(p.hooks.load, []);
    assert.equal(p.hasOwnWritableData, false);
    assert.deepEqual(p.metadata, {});
    assert.deepEqual(p.targetSymbols, []);
  });

  test("hook targets are the functions readelf names", () => {
    const relas = readelfRelocations(path, ".rela.xsplice.hooks.apply");
    assert.equal(relas.length, 1);
    assert.ok(p.hooks.apply);
    assert.equal(readelfName(p, p.hooks.apply), relas[0]?.symbol);
  });

  test("a separate depends build-id is carried as given", () => {
    const depends = Uint8Array.from({ length: 20 }, (_, i) => 0xa0 + i);
    const q = readPayload(
      new Uint8Array(readFileSync(buildFixturePayload({ source: "payload/hooks-only.c", depends }))),
    );
    assert.deepEqual(q.depends, depends);
    assert.deepEqual(q.target, FIXTURE_TARGET_ID);
  });
});

describe("Xen livepatch v2 payload (test/fixtures/payload/livepatch-v2.c)", () => {
  const path = buildFixturePayload({ source: "payload/livepatch-v2.c", format: "livepatch" });
  const p = readPayload(new Uint8Array(readFileSync(path)));

  test("format and notes come from the .livepatch sections", () => {
    assert.equal(p.format, "livepatch");
    const xen = readelfHex(path, ".livepatch.xen_depends");
    assert.deepEqual(p.target, xen.subarray(16, 16 + u32(xen, 4)));
    assert.deepEqual(p.buildId, readelfBuildId(path));
  });

  test("each 104-byte entry matches the raw section, with expectations", () => {
    const raw = readelfHex(path, ".livepatch.funcs");
    const relas = readelfRelocations(path, ".rela.livepatch.funcs");
    assert.equal(p.funcs.length, raw.length / 104);
    for (const f of p.funcs) {
      const base = f.index * 104;
      assert.equal(f.entryOffset, base);
      assert.equal(f.oldAddr, u64(raw, base + 16));
      assert.equal(f.newSize, u32(raw, base + 24));
      assert.equal(f.oldSize, u32(raw, base + 28));
      assert.equal(raw[base + 32], 2);
      const nameRel = relas.find((r) => r.offset === BigInt(base));
      assert.ok(nameRel);
      assert.equal(f.name, oracleString(path, nameRel));
      const newRel = relas.find((r) => r.offset === BigInt(base + 8));
      assert.equal(f.nop, newRel === undefined);
      if (newRel && f.newSymbol) assert.equal(readelfName(p, f.newSymbol), newRel.symbol);
      const ctl = raw[base + 72] ?? 0;
      if (ctl & 1) assert.deepEqual(f.expect, raw.subarray(base + 73, base + 73 + ((ctl >> 1) & 0x1f)));
      else assert.equal(f.expect, undefined);
    }
    assert.deepEqual(
      p.funcs.map((f) => [f.name, f.nop, f.expect?.length]),
      [
        ["check_limit", false, 5],
        ["log_line", false, undefined],
        ["trace_point", true, 4],
      ],
    );
  });

  test("livepatch hooks and metadata", () => {
    assert.equal(p.hooks.load.length, 1);
    assert.ok(p.hooks.load[0]);
    assert.equal(
      readelfName(p, p.hooks.load[0]),
      readelfRelocations(path, ".rela.livepatch.hooks.load")[0]?.symbol,
    );
    assert.deepEqual(p.metadata, { source: "xen-style" });
    assert.equal(p.hasOwnWritableData, false);
  });
});
