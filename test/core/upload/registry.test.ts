/**
 * The registry in the target (SPEC §5, §8): named in /proc/PID/maps, seen the
 * same by a second OS process (the CLI), LIST paging and the version stamp,
 * GET of unknown names, and a forked child with its own copy.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { after, before, describe, it } from "node:test";
import { action, get, list, listAll, upload } from "../../../src/core/api.ts";
import { isRegistryMapping, readTargetRegistry } from "../../../src/core/registry/remote.ts";
import { XspliceError } from "../../../src/errors.ts";
import { readMaps } from "../../../src/process/maps.ts";
import { startTarget, type Target } from "../../helpers/target.ts";
import { cli, generated, TARGET } from "./_fixtures.ts";

function isErr(errno: string) {
  return (e: unknown) => e instanceof XspliceError && e.errno === errno;
}

describe("the registry inside the target", () => {
  let t: Target;
  const names = ["g0", "g1", "g2", "g3", "g4"];
  before(async () => {
    t = await startTarget(TARGET);
  });
  after(async () => {
    await t.kill();
  });

  it("a process without a registry has no payloads: LIST empty, GET ENOENT", async () => {
    assert.deepEqual(await list(t.pid), { version: 0, payloads: [], remaining: 0 });
    await assert.rejects(get(t.pid, "g0"), isErr("ENOENT"));
    assert.ok(!(await listAll()).some((p) => p.pid === t.pid));
  });

  it("appears by name in /proc/PID/maps after the first upload; the version counts every change", async () => {
    for (const [i, n] of names.entries()) {
      await upload(t.pid, n, readFileSync(generated(i)));
      assert.equal((await list(t.pid)).version, i + 1);
    }
    const regs = readMaps(t.pid).filter(isRegistryMapping);
    assert.equal(regs.length, 1);
    assert.equal(regs[0]!.perms.shared, false);
  });

  it("LIST pages in upload order with the number remaining", async () => {
    const p1 = await list(t.pid, 0, 2);
    assert.deepEqual(
      p1.payloads.map((p) => p.name),
      ["g0", "g1"],
    );
    assert.equal(p1.remaining, 3);
    const p2 = await list(t.pid, 2, 2);
    assert.deepEqual(
      p2.payloads.map((p) => p.name),
      ["g2", "g3"],
    );
    assert.equal(p2.remaining, 1);
    const p3 = await list(t.pid, 4, 10);
    assert.deepEqual(
      p3.payloads.map((p) => p.name),
      ["g4"],
    );
    assert.equal(p3.remaining, 0);
    assert.equal(p1.version, p3.version);
    assert.deepEqual(p3.payloads[0]!.metadata, { n: "4", "target-flags": "-flive-patching=inline-clone" });
    assert.equal((await list(t.pid, 9, 1)).payloads.length, 0);
  });

  it("GET and LIST from a second OS process (the CLI) see the same state", async () => {
    const g = await cli(["get", String(t.pid), "g2", "--json"]);
    assert.equal(g.status, 0, g.stderr);
    assert.deepEqual(JSON.parse(g.stdout), await get(t.pid, "g2"));
    const l = await cli(["list", String(t.pid), "--json"]);
    assert.equal(l.status, 0, l.stderr);
    const mine = await list(t.pid);
    assert.deepEqual(JSON.parse(l.stdout), { version: mine.version, payloads: mine.payloads });
    const all = await cli(["list", "--json"]);
    const doc = JSON.parse(all.stdout) as { payloads: { pid: number; name: string }[] };
    assert.deepEqual(
      doc.payloads.filter((p) => p.pid === t.pid).map((p) => p.name),
      names,
    );
  });

  it("UNLOAD removes the record and bumps the version; an unknown name is ENOENT", async () => {
    const v = (await list(t.pid)).version;
    const regions = readTargetRegistry(t.pid)!.state.payloads.find((p) => p.name === "g1")!.regions;
    await action(t.pid, "g1", "UNLOAD");
    assert.equal((await list(t.pid)).version, v + 1);
    await assert.rejects(get(t.pid, "g1"), isErr("ENOENT"));
    await assert.rejects(action(t.pid, "g1", "UNLOAD"), isErr("ENOENT"));
    const maps = readMaps(t.pid);
    for (const r of regions)
      assert.ok(!maps.some((m) => m.start === BigInt(r.addr)), `region ${r.addr} unmapped`);
  });

  it("a forked child has its own copy: a change in the child leaves the parent's registry alone", async () => {
    const from = t.lines.length;
    t.send("fork");
    const child = Number(/child pid=(\d+)/.exec(await t.waitFor(/^child pid=/, { from }))![1]);
    try {
      assert.deepEqual(readTargetRegistry(child)?.state, readTargetRegistry(t.pid)?.state);
      const before = readTargetRegistry(t.pid)!.state;
      await action(child, "g0", "UNLOAD");
      assert.ok(!(await list(child)).payloads.some((p) => p.name === "g0"));
      assert.deepEqual(readTargetRegistry(t.pid)!.state, before);
    } finally {
      process.kill(child, "SIGKILL");
    }
  });
});
