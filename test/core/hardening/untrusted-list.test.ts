/**
 * Issue #11 item 8: any process can break `xsplice list` (no PID) for root.
 * Real processes forge registries (`test/fixtures/hardening/forge-registry.c`
 * maps memfds named `xsplice-registry`; the test writes the forged contents
 * through /proc/PID/mem, as any program could write its own memory), and one
 * process holds a well-formed registry. The listing must list the good one,
 * report each bad process as one entry with its error, skip the process whose
 * file name merely contains the registry's name, and never pass a terminal
 * escape through.
 */
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { initRegistry, registrySize } from "../../../src/core/registry/format.ts";
import type { RegistryState } from "../../../src/core/registry/records.ts";
import { processMemory } from "../../../src/core/registry/remote.ts";
import { tempDir, xsplice } from "../../cli/_run.ts";
import { compileC } from "../../helpers/cc.ts";
import { payloadRecord } from "../../helpers/records.ts";
import { startTarget, type Target } from "../../helpers/target.ts";

const FORGER = compileC({ sources: ["hardening/forge-registry.c"], kind: "exe" });
const SIZE = registrySize();

function state(payloads: unknown): RegistryState {
  return { version: 1, payloads, nextSeq: 1 } as RegistryState;
}

/** Addresses the forger printed. */
function bases(t: Target): bigint[] {
  return /at=(\S+)/
    .exec(t.readyLine)![1]!
    .split(",")
    .map((a) => BigInt(a));
}

describe("xsplice list without a PID, against forged registries", () => {
  const targets: Target[] = [];
  const bad = new Map<string, number>();
  let good: Target;
  let escaped: Target;
  let carriageReturn: Target;
  let tmp: { dir: string; remove: () => void };

  async function forger(args: string[]): Promise<Target> {
    const t = await startTarget(FORGER, args);
    targets.push(t);
    return t;
  }

  before(async () => {
    tmp = tempDir("forge");
    // Not a registry at all: a memfd of the name holding something else.
    const junk = await forger(["memfd", "1", String(SIZE)]);
    processMemory(junk.pid).write(bases(junk)[0]!, new TextEncoder().encode("NOTAREG!garbage"));
    bad.set("junk", junk.pid);
    // Two well-formed registries in one process.
    const two = await forger(["memfd", "2", String(SIZE)]);
    for (const b of bases(two)) initRegistry(processMemory(two.pid), b, state([payloadRecord("twin")]));
    bad.set("two", two.pid);
    // A checksummed slot whose JSON is not the registry's shape.
    const notList = await forger(["memfd", "1", String(SIZE)]);
    initRegistry(processMemory(notList.pid), bases(notList)[0]!, state({ name: "x" }));
    bad.set("payloads-not-a-list", notList.pid);
    const holdsNull = await forger(["memfd", "1", String(SIZE)]);
    initRegistry(processMemory(holdsNull.pid), bases(holdsNull)[0]!, state([payloadRecord("ok"), null]));
    bad.set("payloads-hold-null", holdsNull.pid);
    // A header claiming 1 GiB slots (today: 1.1 GB of xsplice memory and 39 s, issue #11).
    const huge = await forger(["memfd", "1", String(SIZE)]);
    const h = new Uint8Array(96);
    const dv = new DataView(h.buffer);
    h.set(new TextEncoder().encode("XSPLREG1"));
    dv.setUint32(8, 1, true);
    dv.setBigUint64(16, 1n << 30n, true);
    dv.setBigUint64(32, 1n << 30n, true);
    processMemory(huge.pid).write(bases(huge)[0]!, h);
    bad.set("1-GiB-slot", huge.pid);
    // A payload name that is a terminal escape.
    const badName = await forger(["memfd", "1", String(SIZE)]);
    initRegistry(
      processMemory(badName.pid),
      bases(badName)[0]!,
      state([payloadRecord("\x1b[2J\x1b]0;pwned\x07")]),
    );
    bad.set("escape-in-name", badName.pid);

    good = await forger(["memfd", "1", String(SIZE)]);
    initRegistry(processMemory(good.pid), bases(good)[0]!, state([payloadRecord("good-one")]));
    // Well-formed, but its metadata (free text from the payload) carries escapes: listed, escaped.
    escaped = await forger(["memfd", "1", String(SIZE)]);
    initRegistry(
      processMemory(escaped.pid),
      bases(escaped)[0]!,
      state([payloadRecord("meta-escape", { metadata: { note: "\x1b]0;pwned\x07\r\x9b31m" } })]),
    );
    // A file whose name holds "\r" and the registry's name is not a registry (and must not break anything).
    const crPath = join(tmp.dir, "x\rxsplice-registry");
    writeFileSync(crPath, "");
    carriageReturn = await forger(["file", crPath, "4096"]);
  });

  after(async () => {
    for (const t of targets) await t.kill();
    tmp?.remove();
  });

  it("lists the good processes and reports each forged one as one entry with its error (--json)", async () => {
    const r = await xsplice(["list", "--json"]);
    assert.equal(r.status, 0, r.stderr);
    const doc = JSON.parse(r.stdout) as {
      payloads: { pid: number; name: string; metadata: Record<string, string> }[];
      errors: { pid: number; error: string; errno: number; message: string }[];
    };
    assert.deepEqual(
      doc.payloads.filter((p) => p.pid === good.pid).map((p) => p.name),
      ["good-one"],
    );
    assert.equal(doc.payloads.find((p) => p.pid === escaped.pid)?.name, "meta-escape");
    for (const [what, pid] of bad) {
      const e = doc.errors.filter((x) => x.pid === pid);
      assert.equal(e.length, 1, `${what}: one error entry for ${pid}: ${JSON.stringify(doc.errors)}`);
      assert.equal(e[0]!.error, "EINVAL", `${what}: ${e[0]!.message}`);
      assert.equal(doc.payloads.filter((p) => p.pid === pid).length, 0, what);
    }
    const msg = (what: string) => doc.errors.find((x) => x.pid === bad.get(what))!.message;
    assert.match(msg("junk"), /magic/);
    assert.match(msg("two"), /2 registries/);
    assert.match(msg("payloads-not-a-list"), /state\.payloads is object, not a list/);
    assert.match(msg("payloads-hold-null"), /state\.payloads\[1\] is null/);
    assert.match(msg("1-GiB-slot"), /slot size 1073741824 is not 1\.\.67108864/);
    assert.match(msg("escape-in-name"), /state\.payloads\[0\]\.name/);
    assert.ok(!doc.errors.some((x) => x.pid === carriageReturn.pid));
    assert.ok(!doc.payloads.some((x) => x.pid === carriageReturn.pid));
  });

  it("text output carries no control character the target wrote", async () => {
    const r = await xsplice(["list"]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`^${good.pid} +good-one +CHECKED`, "m"));
    assert.match(
      r.stdout,
      new RegExp(`^${escaped.pid} +meta-escape .*note=\\\\x1b\\]0;pwned\\\\x07\\\\x0d\\\\x9b31m`, "m"),
    );
    assert.match(
      r.stdout,
      new RegExp(`^${bad.get("two")} +- +- +EINVAL +registry unreadable: .*2 registries`, "m"),
    );
    // Nothing below 0x20 but the newlines between rows, no DEL, no C1 control.
    // biome-ignore lint/suspicious/noControlCharactersInRegex: finding control characters is the point
    assert.doesNotMatch(r.stdout, /[\x00-\x09\x0b-\x1f\x7f-\x9f]/);
  });
});
