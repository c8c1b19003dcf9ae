/**
 * Relocation kinds checked by running the loaded code inside the target
 * (SPEC §2): each probe of the payload is called on a stopped thread with
 * remoteCall and its result compared with what the target itself holds.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { after, before, describe, it } from "node:test";
import { uploadPayload } from "../../../src/core/loader.ts";
import type { PayloadRecord } from "../../../src/core/registry/records.ts";
import { readMemory } from "../../../src/process/memory.ts";
import { tool } from "../../helpers/cc.ts";
import { startTarget, symbolAddress, type Target } from "../../helpers/target.ts";
import { callExport, LIB, payload, source, strippedTarget, TARGET } from "./_fixtures.ts";

function readInt(pid: number, addr: bigint): number {
  return Buffer.from(readMemory(pid, addr, 4)).readInt32LE(0);
}

/** `st_value` of `name` in `exe`'s .symtab; with `file`, the local defined after that STT_FILE symbol. */
function symValue(exe: string, name: string, file?: string): bigint {
  let current = "";
  for (const line of tool("readelf", ["-sW", exe]).split("\n")) {
    const f = line.trim().split(/\s+/);
    if (f.length < 8) continue;
    if (f[3] === "FILE") current = f[7]!;
    else if (f[7] === name && (file === undefined || current === file)) return BigInt(`0x${f[1]}`);
  }
  throw new Error(`${name}${file ? ` of ${file}` : ""} not in ${exe}`);
}

describe("relocations, checked by calling the loaded code in the target", () => {
  let t: Target;
  let rec: PayloadRecord;
  before(async () => {
    t = await startTarget(TARGET);
    rec = uploadPayload(t.pid, "probes", readFileSync(payload([source("probes.c")]))).record;
  });
  after(async () => {
    await t.kill();
  });

  it("calls libc (snprintf, strlen) through stubs or the GOT and writes its own .bss", () => {
    const n = callExport(t.pid, rec, "probe_libc", [4242n]);
    assert.equal(Number(n), "value=4242".length);
    const buf = callExport(t.pid, rec, "probe_buf");
    assert.equal(Buffer.from(readMemory(t.pid, buf, 10)).toString("latin1"), "value=4242");
  });

  it("reads a target static by file.c#name (the one of upload-main.c, not upload-util.c)", () => {
    const got = Number(callExport(t.pid, rec, "probe_static"));
    // Oracle: readelf's symbol table (the local after STT_FILE upload-main.c) + the bias.
    const bias = BigInt(rec.object.bias);
    assert.equal(got, readInt(t.pid, bias + symValue(TARGET, "hits", "upload-main.c")));
    assert.notEqual(got, readInt(t.pid, bias + symValue(TARGET, "hits", "upload-util.c")));
  });

  it("reads a target global", () => {
    const got = Number(callExport(t.pid, rec, "probe_global"));
    assert.equal(got, readInt(t.pid, symbolAddress(t.pid, TARGET, "counter")));
  });

  it("reads the executable's thread-local in the calling thread", () => {
    const tls = Number(/tls=(\d+)/.exec(t.readyLine)![1]);
    assert.equal(Number(callExport(t.pid, rec, "probe_tls")), tls);
  });

  it("uses string literals (.rodata) and its own .data, which keeps its value between calls", () => {
    assert.equal(Number(callExport(t.pid, rec, "probe_string")), "literal-string-in-rodata".length);
    // probe_libc ran once above: own_bss is 1.
    const first = Number(callExport(t.pid, rec, "probe_data"));
    const second = Number(callExport(t.pid, rec, "probe_data"));
    assert.equal(second, first + 1);
    assert.equal(first % 100000, 1000);
  });

  it("records the patch: a jmp from compute to fixed_compute within rel32", () => {
    const f = rec.funcs[0]!;
    assert.equal(f.name, "compute");
    assert.equal(BigInt(f.oldAddr), symbolAddress(t.pid, TARGET, "compute"));
    assert.equal(f.newAddr, rec.exports["fixed_compute"]);
    assert.equal(f.patch.slice(0, 2), "e9");
    const rel = Buffer.from(f.patch, "hex").readInt32LE(1);
    assert.equal(BigInt(f.patchAddr) + 5n + BigInt(rel), BigInt(f.newAddr));
    // Calling the replacement in place gives the replacement's result.
    const counter = readInt(t.pid, symbolAddress(t.pid, TARGET, "counter"));
    assert.equal(Number(callExport(t.pid, rec, "fixed_compute", [6n, 7n])), 42 - counter);
  });
});

describe("a payload against the target's shared library", () => {
  let t: Target;
  before(async () => {
    t = await startTarget(TARGET);
  });
  after(async () => {
    await t.kill();
  });

  it("finds the library by build-id, patches its function and reads its data", () => {
    const rec = uploadPayload(t.pid, "lib-fix", readFileSync(payload([source("lib-fix.c")], LIB))).record;
    assert.equal(rec.object.path, LIB);
    assert.equal(BigInt(rec.funcs[0]!.oldAddr), symbolAddress(t.pid, LIB, "lib_value"));
    assert.equal(
      Number(callExport(t.pid, rec, "probe_lib_scale")),
      readInt(t.pid, symbolAddress(t.pid, LIB, "lib_scale")),
    );
    const scale = readInt(t.pid, symbolAddress(t.pid, LIB, "lib_scale"));
    assert.equal(Number(callExport(t.pid, rec, "fixed_lib_value", [3n])), 3 * scale + 2);
  });
});

describe("a stripped copy of the target, patched through .xsplice.symbols", () => {
  let t: Target;
  before(async () => {
    t = await startTarget(strippedTarget());
  });
  after(async () => {
    await t.kill();
  });

  it("resolves statics and the old function by link-time address + bias", () => {
    const exe = strippedTarget();
    assert.doesNotMatch(readFileSync(exe).toString("latin1"), /upload-util\.c/, "no .symtab left");
    const rec = uploadPayload(t.pid, "by-symbols", readFileSync(payload([source("by-symbols.c")]))).record;
    // Oracle: the unstripped build's symbols + the stripped process's bias.
    const bias = BigInt(rec.object.bias);
    assert.equal(BigInt(rec.funcs[0]!.oldAddr), bias + symValue(TARGET, "second_fn"));
    const main = readInt(t.pid, bias + symValue(TARGET, "hits", "upload-main.c"));
    const util = readInt(t.pid, bias + symValue(TARGET, "hits", "upload-util.c"));
    assert.equal(Number(callExport(t.pid, rec, "probe_sym_hits")), main * 1000 + util);
  });
});
