/**
 * The commands as a user runs them (SPEC §10): `upload`, `get`, `list`,
 * `unload` as subprocesses, text and `--json`, exit statuses and one-line errors.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { startTarget, type Target } from "../../helpers/target.ts";
import { cli, payload, source, TARGET } from "./_fixtures.ts";

describe("xsplice upload/get/list/unload", () => {
  let t: Target;
  let file: string;
  before(async () => {
    t = await startTarget(TARGET);
    file = payload([source("probes.c")]);
  });
  after(async () => {
    await t.kill();
  });

  it("upload (text), then upload of the same name fails EEXIST with exit 1 and a one-line error", async () => {
    const ok = await cli(["upload", String(t.pid), "fix-1", file]);
    assert.equal(ok.status, 0, ok.stderr);
    assert.match(
      ok.stdout,
      new RegExp(`^uploaded fix-1 into ${t.pid}: 1 function\\(s\\) for .*; state CHECKED\\n$`),
    );
    const dup = await cli(["upload", String(t.pid), "fix-1", file, "--json"]);
    assert.equal(dup.status, 1);
    assert.deepEqual(JSON.parse(dup.stdout), {
      error: "EEXIST",
      errno: 17,
      message: "a payload named 'fix-1' is already loaded",
    });
  });

  it("get and list, text and --json, in the SPEC §10 shapes", async () => {
    const g = await cli(["get", String(t.pid), "fix-1"]);
    assert.equal(g.stdout, "fix-1: CHECKED rc=0\n");
    const gj = await cli(["get", String(t.pid), "fix-1", "--json"]);
    assert.deepEqual(JSON.parse(gj.stdout), { name: "fix-1", state: "CHECKED", rc: 0 });
    const l = await cli(["list", String(t.pid)]);
    assert.match(l.stdout, /^PID +NAME +STATE +RC +METADATA\n/);
    assert.match(
      l.stdout,
      new RegExp(
        `\\n${t.pid} +fix-1 +CHECKED +0 +purpose=probes target-flags=-flive-patching=inline-clone\\n$`,
      ),
    );
    const lj = JSON.parse((await cli(["list", String(t.pid), "--json"])).stdout) as Record<string, unknown>;
    assert.deepEqual(Object.keys(lj), ["version", "payloads"]);
    assert.deepEqual(Object.keys((lj["payloads"] as object[])[0]!), [
      "pid",
      "name",
      "state",
      "rc",
      "metadata",
      "buildId",
    ]);
  });

  it("unload (text and --json); unknown name ENOENT; bad PIDs EINVAL and ESRCH, each named in the line", async () => {
    const u = await cli(["unload", String(t.pid), "fix-1"]);
    assert.equal(u.status, 0, u.stderr);
    assert.equal(u.stdout, `unloaded fix-1 from ${t.pid}\n`);
    const again = await cli(["unload", String(t.pid), "fix-1", "--json"]);
    assert.equal(again.status, 1);
    assert.equal(JSON.parse(again.stdout).error, "ENOENT");
    const bad = await cli(["get", "12ab", "fix-1"]);
    assert.equal(bad.status, 1);
    assert.equal(
      bad.stderr,
      "xsplice: get fix-1 in 12ab: EINVAL: '12ab' is not a process id (a positive integer)\n",
    );
    const gone = await cli(["upload", "4000000", "fix-1", file]);
    assert.equal(gone.status, 1);
    assert.equal(gone.stderr, "xsplice: upload fix-1 in 4000000: ESRCH: no process 4000000\n");
  });
});
