/**
 * SPEC §2: "On any failure, nothing of the payload remains in the target" —
 * for failures that happen after UPLOAD has reached the process. The target
 * (test/fixtures/upload/ifunc-bad-target.c, non-PIE) has two IFUNCs whose
 * resolvers, run in the target inside the upload's stop, spoil the upload:
 *  - bad_data's returns a pointer to data: ENOENT, after the seize, before
 *    anything is mapped;
 *  - far_code's returns libc's labs, which the payload's R_X86_64_32 cannot
 *    hold: EOVERFLOW at the second link, after the regions (and a new
 *    registry) were mapped — the cleanup exit has to unmap them.
 * Each with no registry yet and with an earlier payload loaded; the process
 * must be exactly as before: same /proc/PID/maps, same bytes in the
 * executable's mappings and heap, registry absent or unchanged.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { after, before, describe, it } from "node:test";
import { uploadPayload } from "../../../src/core/loader.ts";
import { readTargetRegistry } from "../../../src/core/registry/remote.ts";
import { XspliceError } from "../../../src/errors.ts";
import { readMaps } from "../../../src/process/maps.ts";
import { readMemory } from "../../../src/process/memory.ts";
import { remoteSyscall } from "../../../src/process/remote-call.ts";
import { SYS } from "../../../src/process/syscalls.ts";
import { withStoppedProcess } from "../../../src/process/threads.ts";
import { compileC } from "../../helpers/cc.ts";
import { startTarget, symbolAddress, type Target, waitBlockedInRead } from "../../helpers/target.ts";
import { payload, source } from "./_fixtures.ts";

const EXE = compileC({
  sources: ["upload/ifunc-bad-target.c"],
  kind: "exe",
  flags: ["-O2", "-g", "-fno-pie", "-no-pie", "-Wl,--build-id", "-flive-patching=inline-clone"],
  name: "ifunc-bad-target",
});
const BAD_DATA = readFileSync(payload([source("ifunc-bad-data.c")], EXE));
const FAR_CODE = readFileSync(payload([source("ifunc-far-code.c")], EXE, { cflags: ["-fno-pic"] }));
const EARLIER = readFileSync(payload([source("ifunc-earlier.c")], EXE));

/** How often the target's IFUNC resolvers ran so far (its `resolver_calls`). */
function countResolverCalls(t: Target): number {
  return Number(
    Buffer.from(readMemory(t.pid, symbolAddress(t.pid, EXE, "resolver_calls"), 8)).readBigInt64LE(),
  );
}

/**
 * The process's maps and a hash of the executable's mappings and heap — but
 * `resolver_calls`, which the resolvers xsplice runs are meant to change.
 */
function fingerprint(pid: number): { maps: string; hash: string } {
  const maps = readFileSync(`/proc/${pid}/maps`, "utf8");
  const counter = symbolAddress(pid, EXE, "resolver_calls");
  const h = createHash("sha256");
  for (const m of readMaps(pid)) {
    if (m.path !== EXE && m.path !== "[heap]") continue;
    const bytes = readMemory(pid, m.start, Number(m.end - m.start));
    if (counter >= m.start && counter + 8n <= m.end)
      bytes.fill(0, Number(counter - m.start), Number(counter - m.start) + 8);
    h.update(bytes);
  }
  return { maps, hash: h.digest("hex") };
}

describe("an upload that fails inside the process leaves nothing behind", () => {
  let t: Target;
  before(async () => {
    t = await startTarget(EXE);
    await waitBlockedInRead(t.pid); // fingerprints must not see the fixture set up stdin
    // xsplice's inject page is made by the first injection and kept for the process's life
    // (docs/architecture.md); make it now, so that the comparisons see only the payload's traces.
    const pid = withStoppedProcess(t.pid, {}, (tr) => remoteSyscall(tr, t.pid, SYS.getpid, []));
    assert.equal(Number(pid), t.pid);
    assert.match(readFileSync(`/proc/${t.pid}/maps`, "utf8"), /xsplice-inject/);
  });
  after(async () => {
    await t?.kill();
  });

  /** Upload must fail with `errno` matching `re` after one resolver call in the stop; nothing may change. */
  function refused(name: string, bytes: Uint8Array, errno: string, re: RegExp): void {
    // A fresh context each time: a cached result would fail the first link, before the process is touched.
    const was = fingerprint(t.pid);
    const reg = readTargetRegistry(t.pid);
    const calls = countResolverCalls(t);
    assert.throws(
      () => uploadPayload(t.pid, name, bytes),
      (e: unknown) => e instanceof XspliceError && e.errno === errno && re.test(e.message),
    );
    assert.equal(countResolverCalls(t) - calls, 1, "the resolver ran in the target, in the upload's stop");
    const now = fingerprint(t.pid);
    assert.equal(now.maps, was.maps, "mappings unchanged");
    assert.equal(now.hash, was.hash, "program memory unchanged");
    // The same state; its generation may have counted the upload journal's two commits (SPEC §8).
    assert.deepEqual(readTargetRegistry(t.pid)?.state, reg?.state, "registry unchanged");
  }

  it("no registry yet: a resolver returning data is ENOENT, nothing mapped, no registry", () => {
    assert.equal(readTargetRegistry(t.pid), undefined);
    refused("bad-data", BAD_DATA, "ENOENT", /IFUNC 'bad_data' .* returned 0x[0-9a-f]+, which is not code/);
    assert.doesNotMatch(readFileSync(`/proc/${t.pid}/maps`, "utf8"), /xsplice-registry/);
  });

  it("no registry yet: EOVERFLOW at the second link unmaps the regions and the new registry", () => {
    refused(
      "far-code",
      FAR_CODE,
      "EOVERFLOW",
      /R_X86_64_32 against far_code: value 0x7f[0-9a-f]+ does not fit/,
    );
    assert.equal(readTargetRegistry(t.pid), undefined);
    assert.doesNotMatch(readFileSync(`/proc/${t.pid}/maps`, "utf8"), /xsplice-registry/);
  });

  it("with an earlier payload loaded: both failures leave its registry and mappings as they were", () => {
    const rec = uploadPayload(t.pid, "earlier", EARLIER).record;
    const reg = readTargetRegistry(t.pid);
    assert.deepEqual(
      reg?.state.payloads.map((p) => p.name),
      ["earlier"],
    );
    refused("bad-data", BAD_DATA, "ENOENT", /IFUNC 'bad_data'/);
    refused("far-code", FAR_CODE, "EOVERFLOW", /R_X86_64_32 against far_code/);
    // The earlier payload's regions are still there, and a good upload still works after the failures.
    const maps = readMaps(t.pid);
    for (const r of rec.regions)
      assert.ok(
        maps.some((m) => m.start === BigInt(r.addr)),
        `${r.kind} region of 'earlier' still mapped`,
      );
    assert.deepEqual(readTargetRegistry(t.pid)?.state, reg?.state);
  });
});
