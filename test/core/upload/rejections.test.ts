/**
 * Every SPEC §2 rejection that needs a process, each with its errno, and the
 * process left exactly as before: same /proc/PID/maps, same bytes in the
 * executable's and library's mappings and the heap, no registry created.
 */
import assert from "node:assert/strict";
import { createHash, generateKeyPairSync } from "node:crypto";
import { readFileSync } from "node:fs";
import { after, before, describe, it } from "node:test";
import { uploadPayload } from "../../../src/core/loader.ts";
import { readTargetRegistry } from "../../../src/core/registry/remote.ts";
import { XspliceError } from "../../../src/errors.ts";
import { keyIdOf, readPayload } from "../../../src/payload/index.ts";
import { readMaps } from "../../../src/process/maps.ts";
import { readMemory } from "../../../src/process/memory.ts";
import { compileC, tool } from "../../helpers/cc.ts";
import { startTarget, type Target, waitBlockedInRead } from "../../helpers/target.ts";
import { LIB, payload, source, TARGET, TARGET_FLAGS } from "./_fixtures.ts";

function isErr(errno: string, re?: RegExp) {
  return (e: unknown) => {
    assert.ok(e instanceof XspliceError, String(e));
    assert.equal(e.errno, errno, e.message);
    if (re) assert.match(e.message, re);
    return true;
  };
}

/** What must not change: the maps and a hash of the program's own mappings and its heap. */
function fingerprint(pid: number): { maps: string; hash: string } {
  const maps = readFileSync(`/proc/${pid}/maps`, "utf8");
  const h = createHash("sha256");
  for (const m of readMaps(pid)) {
    if (m.path !== TARGET && m.path !== LIB && m.path !== "[heap]") continue;
    h.update(readMemory(pid, m.start, Number(m.end - m.start)));
  }
  return { maps, hash: h.digest("hex") };
}

function symValue(exe: string, name: string): { value: bigint; size: number } {
  for (const line of tool("readelf", ["-sW", exe]).split("\n")) {
    const f = line.trim().split(/\s+/);
    if (f[7] === name) return { value: BigInt(`0x${f[1]}`), size: Number(f[2]) };
  }
  throw new Error(`${name} not in ${exe}`);
}

/** `two.c` with entries rewritten: `entry(name)` is the file offset of the entry for that old function. */
function mutated(change: (bytes: Buffer, entry: (name: string) => number) => void): Buffer {
  const bytes = Buffer.from(readFileSync(payload([source("two.c")])));
  const p = readPayload(bytes);
  const funcs = p.elf.sectionByName(".xsplice.funcs")!;
  change(bytes, (name) => funcs.offset + p.funcs.find((f) => f.name === name)!.entryOffset);
  return bytes;
}

describe("SPEC §2 rejections leave the process unchanged", () => {
  let t: Target;
  let before0: { maps: string; hash: string };
  before(async () => {
    t = await startTarget(TARGET);
    await waitBlockedInRead(t.pid); // fingerprints must not see the fixture set up stdin
    before0 = fingerprint(t.pid);
  });
  after(async () => {
    await t.kill();
  });

  /** Upload must fail with `errno`, and the process must look exactly as before. */
  function refused(name: string, bytes: Uint8Array, errno: string, re?: RegExp, opts = {}) {
    const was = fingerprint(t.pid);
    const reg = readTargetRegistry(t.pid);
    assert.throws(() => uploadPayload(t.pid, name, bytes, opts), isErr(errno, re));
    const now = fingerprint(t.pid);
    assert.equal(now.maps, was.maps, "mappings unchanged");
    assert.equal(now.hash, was.hash, "program memory unchanged");
    assert.deepEqual(readTargetRegistry(t.pid), reg, "registry unchanged");
  }

  it("bad names are EINVAL", () => {
    const bytes = readFileSync(payload([source("probes.c")]));
    refused("", bytes, "EINVAL", /1-127 bytes/);
    refused("x".repeat(128), bytes, "EINVAL", /got 128/);
    refused("a\nb", bytes, "EINVAL", /non-printable/);
    refused("caf\u00e9", bytes, "EINVAL", /non-printable/);
  });

  it("an empty payload or one over the size limit is EINVAL", () => {
    refused("p", new Uint8Array(0), "EINVAL", /empty/);
    const bytes = readFileSync(payload([source("probes.c")]));
    refused("p", bytes, "EINVAL", /above the limit/, { maxSize: 1024 });
  });

  it("an unsigned payload under requireSignature is EKEYREJECTED before anything touches the target", () => {
    const { publicKey } = generateKeyPairSync("ed25519");
    const pem = publicKey.export({ type: "spki", format: "pem" }).toString();
    const bytes = readFileSync(payload([source("probes.c")]));
    refused("p", bytes, "EKEYREJECTED", /not signed/, {
      requireSignature: true,
      trustedKeys: [{ keyId: keyIdOf(pem), key: pem }],
    });
  });

  it("a target build-id mapped nowhere in the process is ENOENT naming it", () => {
    const other = compileC({
      sources: ["upload/upload-main.c", "upload/upload-util.c"],
      kind: "exe",
      flags: TARGET_FLAGS.map((f) => (f === "-O2" ? "-O1" : f)),
      libs: [LIB, "-lpthread"],
      name: "upload-target-o1",
    });
    const bytes = readFileSync(payload([source("probes.c")], other));
    const id = Buffer.from(readPayload(bytes).target).toString("hex");
    refused("p", bytes, "ENOENT", new RegExp(`build-id ${id}`));
  });

  it("an unresolvable symbol is ENOENT naming it", () => {
    refused("p", readFileSync(payload([source("bad-unresolved.c")])), "ENOENT", /no_such_symbol_anywhere/);
  });

  it("an old function that is not in the target is ENOENT naming it", () => {
    const bytes = mutated((b, entry) => {
      b.writeBigUInt64LE(0n, entry("second_fn") + 16); // old_addr 0: look the name up
      const at = b.indexOf("second_fn\0");
      assert.equal(b.indexOf("second_fn\0", at + 1), -1, "the name occurs once");
      b.write("X", at + 8);
    });
    refused("p", bytes, "ENOENT", /second_fX/);
  });

  it("a function too small for the jump is EINVAL", () => {
    const tiny = symValue(TARGET, "tiny");
    const bytes = mutated((b, entry) => {
      b.writeBigUInt64LE(tiny.value, entry("compute") + 16);
      b.writeBigUInt64LE(BigInt(tiny.size), entry("compute") + 24);
    });
    // The payload reader already knows 1 < 5 (no process needed); still EINVAL.
    refused("p", bytes, "EINVAL", /old_size 1 is smaller than a 5-byte jump/);
  });

  it("a 7-byte function starting with endbr64 is EINVAL (needs 9)", () => {
    const f = symValue(TARGET, "short_endbr");
    assert.equal(f.size, 7);
    const bytes = mutated((b, entry) => {
      b.writeBigUInt64LE(f.value, entry("compute") + 16);
      b.writeBigUInt64LE(BigInt(f.size), entry("compute") + 24);
    });
    refused("p", bytes, "EINVAL", /below the 9 bytes/);
  });

  it("the same old function twice in one payload is EINVAL", () => {
    // compute by name, second_fn's entry by compute's address: distinct in the file, one function in the process.
    const bytes = mutated((b, entry) => {
      const at = b.readBigUInt64LE(entry("compute") + 16);
      b.writeBigUInt64LE(0n, entry("compute") + 16);
      b.writeBigUInt64LE(at, entry("second_fn") + 16);
      b.writeBigUInt64LE(b.readBigUInt64LE(entry("compute") + 24), entry("second_fn") + 24);
    });
    refused("p", bytes, "EINVAL", /already patched by (compute|second_fn)/);
  });

  it("a rejection before the first upload creates no registry", () => {
    assert.equal(readTargetRegistry(t.pid), undefined);
    assert.deepEqual(fingerprint(t.pid), before0);
  });

  it("a duplicate name, a duplicate build-id and a shadowed export are EEXIST", () => {
    const probes = readFileSync(payload([source("probes.c")]));
    uploadPayload(t.pid, "probes", probes);
    refused("probes", readFileSync(payload([source("two.c")])), "EEXIST", /named 'probes'/);
    refused("probes-again", probes, "EEXIST", /already loaded as 'probes'/);
    refused("shadow", readFileSync(payload([source("shadow.c")])), "EEXIST", /probe_libc.*'probes'/);
  });
});
