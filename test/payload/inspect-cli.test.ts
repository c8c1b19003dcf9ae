/**
 * `xsplice inspect` run as a subprocess through bin/xsplice.js (SPEC §10):
 * text and --json output checked against readelf, exit codes, and the
 * one-line error for a malformed file, a missing file and a directory.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { generateKeyPairSync } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { keyIdOf, signPayload } from "../../src/payload/signature.ts";
import { ROOT } from "../helpers/cc.ts";
import { buildFixturePayload, readelfBuildId } from "../helpers/payload-fixtures.ts";

function xsplice(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [join(ROOT, "bin/xsplice.js"), ...args], { encoding: "utf8" });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

const hex = (b: Uint8Array | undefined) => Buffer.from(b ?? []).toString("hex");
const dir = mkdtempSync(join(tmpdir(), "xsplice-inspect-"));
after(() => rmSync(dir, { recursive: true, force: true }));

describe("xsplice inspect", () => {
  const path = buildFixturePayload({ source: "payload/xsplice-basic.c" });

  test("text: notes, functions, hooks, metadata and relocations", () => {
    const r = xsplice("inspect", path);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stderr, "");
    const out = r.stdout;
    assert.match(out, /^format: +xsplice \(x86_64\)$/m);
    assert.match(out, new RegExp(`^build-id: +${hex(readelfBuildId(path))}$`, "m"));
    assert.match(out, /^functions: 3$/m);
    assert.match(out, /^ {2}\[0\] parse_header \(64 bytes\): -> fixed_parse \(96 bytes\)$/m);
    assert.match(out, /^ {2}\[1\] sum\.c#sum_values @ 0x401136 \(40 bytes\): -> fixed_sum \(48 bytes\)$/m);
    assert.match(out, /^ {2}\[2\] debug_trap \(24 bytes\): NOP 5 bytes$/m);
    assert.match(out, /^ {2}load: on_load, on_load_again$/m);
    assert.match(out, /^ {2}cve=CVE-2026-0002$/m);
    assert.match(out, /^signed: +no$/m);
    // Relocation counts by type name; readelf -r is the oracle for the R_X86_64_64 count.
    const abs = spawnSync("readelf", ["-rW", path], { encoding: "utf8" }).stdout.match(
      / R_X86_64_64 /g,
    )?.length;
    assert.match(out, new RegExp(`^relocations: .*R_X86_64_64 ${abs}\\b`, "m"));
  });

  test("--json: the SPEC §10 shape, addresses as 0x strings", () => {
    const r = xsplice("inspect", path, "--json");
    assert.equal(r.status, 0, r.stderr);
    const doc = JSON.parse(r.stdout);
    for (const key of [
      "format",
      "machine",
      "buildId",
      "target",
      "depends",
      "funcs",
      "hooks",
      "metadata",
      "signed",
    ]) {
      assert.ok(key in doc, `has ${key}`);
    }
    assert.equal(doc.format, "xsplice");
    assert.equal(doc.machine, 62);
    assert.equal(doc.buildId, hex(readelfBuildId(path)));
    assert.equal(doc.signed, false);
    assert.deepEqual(doc.funcs[1], {
      name: "sum.c#sum_values",
      oldAddr: "0x401136",
      oldSize: 40,
      newSize: 48,
      nop: false,
      newSymbol: "fixed_sum",
    });
    assert.deepEqual(doc.funcs[2], {
      name: "debug_trap",
      oldAddr: "0x0",
      oldSize: 24,
      newSize: 5,
      nop: true,
    });
    assert.deepEqual(doc.hooks, {
      load: ["on_load", "on_load_again"],
      unload: ["on_unload"],
      preapply: "before_apply",
      postrevert: "after_revert",
    });
    assert.deepEqual(doc.metadata, {
      cve: "CVE-2026-0001\nCVE-2026-0002",
      author: "xsplice tests",
      version: "1.2",
    });
    assert.equal(typeof doc.relocations["R_X86_64_PC32"], "number");
  });

  test("--json on a signed livepatch payload", () => {
    const ed = generateKeyPairSync("ed25519");
    const lp = buildFixturePayload({ source: "payload/livepatch-v2.c", format: "livepatch" });
    const file = join(dir, "signed.livepatch");
    writeFileSync(
      file,
      signPayload(new Uint8Array(readFileSync(lp)), ed.privateKey, keyIdOf(ed.publicKey), "ci"),
    );
    const r = xsplice("inspect", file, "--json");
    assert.equal(r.status, 0, r.stderr);
    const doc = JSON.parse(r.stdout);
    assert.equal(doc.format, "livepatch");
    assert.equal(doc.signed, true);
    assert.deepEqual(doc.signature, { algo: "Ed25519", keyId: hex(keyIdOf(ed.publicKey)), signer: "ci" });
    assert.equal(doc.funcs[0].name, "check_limit");
    assert.equal(doc.funcs[0].expect, "f30f1efa55");
  });

  test("a malformed payload: exit 1, one line naming the operation, errno and reason", () => {
    const bad = new Uint8Array(readFileSync(path));
    bad[0x12] = 3; // e_machine i386
    const file = join(dir, "bad.o");
    writeFileSync(file, bad);
    const r = xsplice("inspect", file);
    assert.equal(r.status, 1);
    assert.equal(r.stdout, "");
    assert.equal(
      r.stderr,
      `xsplice: inspect ${file}: EOPNOTSUPP: e_machine 3 is neither EM_X86_64 (62) nor EM_AARCH64 (183)\n`,
    );
  });

  test("a missing file: ENOENT, one line; with --json the error document", () => {
    const file = join(dir, "nope.o");
    const r = xsplice("inspect", file);
    assert.equal(r.status, 1);
    assert.equal(r.stderr, `xsplice: inspect ${file}: ENOENT: cannot read ${file}: no such file\n`);
    const j = xsplice("inspect", file, "--json");
    assert.equal(j.status, 1);
    assert.deepEqual(JSON.parse(j.stdout), {
      error: "ENOENT",
      errno: 2,
      message: `cannot read ${file}: no such file`,
    });
  });

  test("a directory or a missing argument: EINVAL, exit 1", () => {
    const d = xsplice("inspect", dir);
    assert.equal(d.status, 1);
    assert.match(d.stderr, /^xsplice: inspect .*: EINVAL: .* is a directory, not a regular file\n$/);
    const none = xsplice("inspect");
    assert.equal(none.status, 1);
    assert.match(none.stderr, /EINVAL: wrong number of arguments/);
  });
});
