/**
 * Issue #11 item 9: patch sites are checked at upload. A payload names any
 * `old_addr` it likes; before, one aimed at a data array got `e9 …` written
 * into it, and two sites two bytes apart applied and then could never be
 * reverted. Now the bytes a trampoline overwrites must lie in executable code
 * of the target object, inside one function (the target has a symbol table),
 * and overlap no other site of the payload or of a loaded payload — except
 * the same function stacked by a later payload. Each refusal is one EINVAL
 * naming the function and the address, and the process is left as it was.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { after, before, describe, it } from "node:test";
import { runAction } from "../../../src/core/execute.ts";
import { uploadPayload } from "../../../src/core/loader.ts";
import { readTargetRegistry } from "../../../src/core/registry/remote.ts";
import { openTarget } from "../../../src/core/session.ts";
import { XspliceError } from "../../../src/errors.ts";
import { readPayload } from "../../../src/payload/index.ts";
import { readMaps } from "../../../src/process/maps.ts";
import { readMemory } from "../../../src/process/memory.ts";
import { tool } from "../../helpers/cc.ts";
import { startTarget, type Target, waitBlockedInRead } from "../../helpers/target.ts";
import { payload, source, TARGET } from "../upload/_fixtures.ts";

function symValue(name: string): { value: bigint; size: number } {
  for (const line of tool("readelf", ["-sW", TARGET]).split("\n")) {
    const f = line.trim().split(/\s+/);
    if (f[7] === name) return { value: BigInt(`0x${f[1]}`), size: Number(f[2]) };
  }
  throw new Error(`${name} not in ${TARGET}`);
}

/** `two.c` (entries for compute and second_fn) with entries rewritten: `entry(name)` is its file offset. */
function mutated(change: (bytes: Buffer, entry: (name: string) => number) => void): Buffer {
  const bytes = Buffer.from(readFileSync(payload([source("two.c")])));
  const p = readPayload(bytes);
  const funcs = p.elf.sectionByName(".xsplice.funcs")!;
  change(bytes, (name) => funcs.offset + p.funcs.find((f) => f.name === name)!.entryOffset);
  return bytes;
}
const OLD_ADDR = 16;
const OLD_SIZE = 24;

/** The maps, and a hash of the program's own mappings: what a refusal must not change. */
function fingerprint(pid: number): string {
  const h = createHash("sha256").update(readFileSync(`/proc/${pid}/maps`));
  for (const m of readMaps(pid))
    if (m.path === TARGET) h.update(readMemory(pid, m.start, Number(m.end - m.start)));
  return h.digest("hex");
}

describe("patch sites are checked at upload", () => {
  let t: Target;
  before(async () => {
    t = await startTarget(TARGET);
    await waitBlockedInRead(t.pid);
  });
  after(async () => {
    await t?.kill();
  });

  function refused(bytes: Uint8Array, re: RegExp) {
    const was = fingerprint(t.pid);
    const reg = readTargetRegistry(t.pid);
    assert.throws(
      () => uploadPayload(t.pid, "bad-site", bytes),
      (e: unknown) => {
        assert.ok(e instanceof XspliceError, String(e));
        assert.equal(e.errno, "EINVAL", e.message);
        assert.match(e.message, re);
        return true;
      },
    );
    assert.equal(fingerprint(t.pid), was, "process unchanged");
    assert.deepEqual(readTargetRegistry(t.pid), reg, "registry unchanged");
  }

  it("old_addr in a data object is refused, naming the entry and the address", () => {
    const counter = symValue("counter");
    const bytes = mutated((b, entry) => b.writeBigUInt64LE(counter.value, entry("second_fn") + OLD_ADDR));
    refused(
      bytes,
      /second_fn: patch site 0x[0-9a-f]+\.\.0x[0-9a-f]+ is not inside executable code of .*\(mapping .* is not executable\)/,
    );
  });

  it("a site running past the end of its function is refused", () => {
    const compute = symValue("compute");
    const bytes = mutated((b, entry) => {
      b.writeBigUInt64LE(compute.value + BigInt(compute.size) - 2n, entry("second_fn") + OLD_ADDR);
      b.writeBigUInt64LE(5n, entry("second_fn") + OLD_SIZE);
    });
    refused(
      bytes,
      /second_fn: patch site 0x[0-9a-f]+\.\.0x[0-9a-f]+ runs past the end of function 'compute'/,
    );
  });

  it("two sites of one payload two bytes apart are refused", () => {
    const compute = symValue("compute");
    const bytes = mutated((b, entry) => {
      b.writeBigUInt64LE(compute.value + 2n, entry("second_fn") + OLD_ADDR);
      b.writeBigUInt64LE(BigInt(compute.size - 2), entry("second_fn") + OLD_SIZE);
    });
    refused(
      bytes,
      /(compute|second_fn): patch site 0x[0-9a-f]+\.\.0x[0-9a-f]+ overlaps (second_fn|compute) at 0x[0-9a-f]+\.\.0x[0-9a-f]+ in this payload/,
    );
  });

  it("a site overlapping an applied payload's is refused; stacking on the same function is not", async () => {
    const first = uploadPayload(t.pid, "first", readFileSync(payload([source("probes.c")])));
    const s = openTarget(t.pid);
    try {
      runAction(s, "first", "APPLY", { timeoutMs: 1000 });
    } finally {
      s.close();
    }
    const applied = first.record.funcs[0]!;
    const endbr = BigInt(applied.patchAddr) - BigInt(applied.oldAddr); // 4 past an endbr64, else 0
    const compute = symValue("compute");
    const second = symValue("second_fn");
    // Entry "second_fn" aimed 2 bytes into the applied site of compute; entry "compute" moved to second_fn.
    const bytes = mutated((b, entry) => {
      b.writeBigUInt64LE(compute.value + endbr + 2n, entry("second_fn") + OLD_ADDR);
      b.writeBigUInt64LE(BigInt(compute.size) - endbr - 2n, entry("second_fn") + OLD_SIZE);
      b.writeBigUInt64LE(second.value, entry("compute") + OLD_ADDR);
      b.writeBigUInt64LE(BigInt(second.size), entry("compute") + OLD_SIZE);
    });
    refused(bytes, /second_fn: patch site 0x[0-9a-f]+\.\.0x[0-9a-f]+ overlaps compute of 'first' at /);
    // Stacking: the same function again (two.c patches compute by name, second_fn too) is accepted.
    const stacked = uploadPayload(t.pid, "stacked", readFileSync(payload([source("two.c")])));
    assert.equal(
      stacked.record.funcs.find((f) => f.name === "compute")!.patchAddr,
      first.record.funcs[0]!.patchAddr,
    );
  });
});
