/**
 * IFUNC symbols (SPEC §2 symbols): a payload calling glibc's strlen, memcpy
 * and strchr, and the target's own IFUNC, must be bound to the
 * implementations the target's resolvers choose, not to the resolvers. The
 * probes run inside the target (remoteCall); the oracles are the target's own
 * bindings (dlsym of an IFUNC returns the chosen implementation) and
 * LD_SHOW_AUXV for the hardware capabilities passed to the resolvers.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { after, before, describe, it } from "node:test";
import { createContext, type XspliceContext } from "../../../src/core/context.ts";
import { hardwareCaps } from "../../../src/core/load/ifunc.ts";
import { prepareUpload, type UploadTimings, uploadPayload } from "../../../src/core/loader.ts";
import type { PayloadRecord } from "../../../src/core/registry/records.ts";
import { readMaps } from "../../../src/process/maps.ts";
import { readMemory } from "../../../src/process/memory.ts";
import { compileC } from "../../helpers/cc.ts";
import { startTarget, type Target } from "../../helpers/target.ts";
import { callExport, payload, source, TARGET_FLAGS } from "./_fixtures.ts";

const IFUNC_TARGET = compileC({
  sources: ["upload/ifunc-target.c"],
  kind: "exe",
  flags: TARGET_FLAGS,
  name: "ifunc-target",
});
const FIX = readFileSync(payload([source("ifunc-fix.c")], IFUNC_TARGET));
const NONE = readFileSync(payload([source("ifunc-none.c")], IFUNC_TARGET));

// Expected results come from the payload's own source: its input string and copy length.
const fixSource = readFileSync(source("ifunc-fix.c"), "utf8");
const TEXT = /static char text\[\] = "([^"]*)";/.exec(fixSource)![1]!;
const N = Number(/volatile unsigned long n = (\d+);/.exec(fixSource)![1]);

/** A `key=0x...` address of the target's ready line. */
function readyAddr(t: Target, key: string): bigint {
  const m = new RegExp(`\\b${key}=(0x[0-9a-f]+)`).exec(t.readyLine);
  assert.ok(m, `${key} in '${t.readyLine}'`);
  return BigInt(m[1]!);
}

describe("payload calling IFUNCs, checked inside the target", () => {
  let t: Target;
  let rec: PayloadRecord;
  let timings: UploadTimings;
  // One context for the file: the second process's upload finds the first one's resolver results.
  const context: XspliceContext = createContext();
  before(async () => {
    t = await startTarget(IFUNC_TARGET);
    ({ record: rec, timings } = uploadPayload(t.pid, "ifunc-fix", FIX, { context }));
  });
  after(async () => {
    await t.kill();
  });

  it("strlen, memcpy and strchr compute the right results", () => {
    assert.equal(Number(callExport(t.pid, rec, "probe_strlen")), TEXT.length);
    const copy = callExport(t.pid, rec, "probe_memcpy");
    assert.equal(Buffer.from(readMemory(t.pid, copy, N + 1)).toString("latin1"), `${TEXT.slice(0, N)}\0`);
    assert.equal(Number(callExport(t.pid, rec, "probe_strchr")), TEXT.indexOf(","));
  });

  it("binds glibc's IFUNCs to the implementations the target's dlsym returns", () => {
    for (const f of ["strlen", "memcpy", "strchr"]) {
      const got = callExport(t.pid, rec, `addr_${f}`);
      assert.equal(got, readyAddr(t, f), `${f}: payload bound 0x${got.toString(16)}`);
    }
  });

  it("binds the target's own IFUNC (.symtab) to what its IRELATIVE relocation chose", () => {
    assert.equal(callExport(t.pid, rec, "addr_scale"), readyAddr(t, "scale"));
    const scale7 = Number(/scale7=(-?\d+)/.exec(t.readyLine)![1]);
    assert.equal(Number(callExport(t.pid, rec, "probe_scale", [7n])), scale7);
  });

  it("called the four resolvers once each, in the upload's one stop", () => {
    assert.equal(timings.ifuncCalls, 4, "strlen, memcpy, strchr, scale");
    assert.ok(timings.ifunc! > 0 && timings.ifunc! <= timings.stopped!);
  });

  it("a second process with another load bias reuses the cached results: no call, right addresses", async () => {
    const t2 = await startTarget(IFUNC_TARGET);
    try {
      assert.notEqual(readyAddr(t2, "strlen"), readyAddr(t, "strlen"), "ASLR moved libc");
      const { record: rec2, timings: again } = uploadPayload(t2.pid, "ifunc-fix", FIX, { context });
      assert.equal(again.ifuncCalls, 0);
      for (const f of ["strlen", "memcpy", "strchr", "scale"])
        assert.equal(callExport(t2.pid, rec2, `addr_${f}`), readyAddr(t2, f), f);
      assert.equal(Number(callExport(t2.pid, rec2, "probe_strlen")), TEXT.length);
    } finally {
      await t2.kill();
    }
  });

  it("a payload referencing no IFUNC links once and calls nothing", () => {
    const prepared = prepareUpload(t.pid, "none-prep", NONE, undefined, readMaps(t.pid));
    assert.equal(prepared.provisional, false);
    assert.deepEqual(prepared.ifuncs.pending, []);
    const none = uploadPayload(t.pid, "ifunc-none", NONE).timings;
    assert.equal(none.ifuncCalls, 0);
  });

  it("passes the target's AT_HWCAP (as ld.so shows it) to the resolvers", () => {
    const shown = execFileSync(IFUNC_TARGET, [], { env: { LD_SHOW_AUXV: "1" }, input: "" }).toString();
    const hw = /^AT_HWCAP:\s+([0-9a-f]+)$/m.exec(shown);
    assert.ok(hw, "LD_SHOW_AUXV prints AT_HWCAP");
    assert.equal(hardwareCaps(t.pid).hwcap, BigInt(`0x${hw[1]}`));
  });
});
