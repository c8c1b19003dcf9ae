/**
 * `xsplice load/revert/unload --all` (SPEC §14, issue #14 tests): 30
 * processes of one target; one of them held by another tracer is reported
 * `EBUSY` while the 29 others are patched, reverted and unloaded; processes
 * are found by the build-id of what they map, not by the path on disk.
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { copyFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { list } from "../../src/core/api.ts";
import { tempDir, xsplice } from "../cli/_run.ts";
import { ROOT } from "../helpers/cc.ts";
import { startTarget, type Target } from "../helpers/target.ts";
import { agentPayload, agentTarget, ask, FIX_VALUE, OLD_VALUE, startTargets } from "./_fixture.ts";

const HOLD = join(ROOT, "test/fixtures/process/hold.ts");
const N = 30;

let exe: string;
let file: string;
const name = "agent-fix";
const targets: Target[] = [];
let holder: ChildProcess | undefined;
const tmp = tempDir("all");

before(async () => {
  exe = agentTarget();
  file = join(tmp.dir, `${name}.xsplice`);
  copyFileSync(agentPayload("fix.c", exe), file);
  await startTargets(exe, N, targets);
});
after(async () => {
  holder?.kill("SIGKILL");
  await Promise.all(targets.map((t) => t.kill()));
  tmp.remove();
});

/** Hold `pid` with another tracer (a plain seize from a node that is not xsplice). */
async function holdWithOtherTracer(pid: number): Promise<ChildProcess> {
  const child = spawn(process.execPath, ["--import", "tsx", HOLD, String(pid)], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  await new Promise<void>((resolve, reject) => {
    let buf = "";
    child.stdout!.setEncoding("utf8").on("data", (d: string) => {
      buf += d;
      if (/^held /.test(buf)) resolve();
      else if (buf.includes("\n")) reject(new Error(`hold: ${buf}`));
    });
    child.once("exit", (code) => reject(new Error(`hold exited ${code}: ${buf}`)));
  });
  return child;
}

type Row = { pid: number; comm: string; ok: boolean; state: string | null; error?: string; pause: unknown };

function ours(rows: Row[]): Row[] {
  const pids = new Set(targets.map((t) => t.pid));
  return rows.filter((r) => pids.has(r.pid));
}

test("load --all patches every process but the one another tracer holds (EBUSY), revert --all and unload --all undo it", async () => {
  const held = targets[0]!;
  holder = await holdWithOtherTracer(held.pid);

  const loaded = await xsplice(["load", "--all", file, "-j", "2", "--json", "--retry-for", "0"]);
  const doc = JSON.parse(loaded.stdout) as { results: Row[]; ok: number; failed: number };
  const rows = ours(doc.results);
  // Every process of the target is found (and no other process maps its build-id).
  assert.equal(doc.results.length, N, loaded.stdout);
  assert.equal(rows.length, N);
  assert.deepEqual(
    rows.filter((r) => !r.ok).map((r) => [r.pid, r.error]),
    [[held.pid, "EBUSY"]],
  );
  assert.equal(doc.ok, N - 1);
  assert.equal(doc.failed, 1);
  // Only EBUSY failures: worth retrying, exit 2 (SPEC §14).
  assert.equal(loaded.status, 2, loaded.stderr);
  for (const r of rows.filter((x) => x.ok)) assert.equal(r.state, "APPLIED");

  holder.kill("SIGKILL");
  await new Promise((r) => holder!.once("exit", r));
  holder = undefined;

  // Each process answers with the patched version; the original ran once only, before the load.
  for (const t of targets.slice(1)) assert.deepEqual(await ask(t), { value: FIX_VALUE, oldCalls: 1 });
  assert.deepEqual(await ask(held), { value: OLD_VALUE, oldCalls: 2 });
  assert.equal((await list(held.pid)).payloads.length, 0);

  const reverted = await xsplice(["revert", "--all", name, "--json"]);
  assert.equal(reverted.status, 0, reverted.stderr);
  const rev = JSON.parse(reverted.stdout) as { results: Row[]; ok: number; failed: number };
  assert.equal(ours(rev.results).length, N - 1);
  assert.ok(rev.results.every((r) => r.ok && r.state === "CHECKED"));
  for (const t of targets.slice(1)) assert.equal((await ask(t)).value, OLD_VALUE);

  const unloaded = await xsplice(["unload", "--all", name]);
  assert.equal(unloaded.status, 0, unloaded.stderr);
  assert.match(
    unloaded.stdout,
    new RegExp(`unload --all ${name}: ${N - 1} of ${N - 1} processes ok, 0 failed`),
  );
  assert.match(unloaded.stderr, new RegExp(`${N - 1}/${N - 1} done, 0 failed`));
  for (const t of targets) assert.equal((await list(t.pid)).payloads.length, 0);

  const none = await xsplice(["revert", "--all", name]);
  assert.equal(none.status, 0);
  assert.equal(none.stdout, `no process has ${name} applied\n`);
});

test("--all finds a process by the build-id it maps, even when the file on disk was replaced", async () => {
  const copy = join(tmp.dir, "replaced-target");
  copyFileSync(exe, copy);
  const t = await startTarget(copy);
  try {
    // Replace the file on disk by something else: the path now names a file without the build-id.
    writeFileSync(`${copy}.new`, "#!/bin/sh\n");
    renameSync(`${copy}.new`, copy);
    const r = await xsplice(["load", "--all", file, "--json"]);
    assert.equal(r.status, 0, r.stdout + r.stderr);
    const rows = (JSON.parse(r.stdout) as { results: Row[] }).results;
    assert.ok(
      rows.some((x) => x.pid === t.pid && x.ok),
      r.stdout,
    );
    assert.equal((await ask(t)).value, FIX_VALUE);
    const back = await xsplice(["revert", "--all", name]);
    assert.equal(back.status, 0, back.stderr);
    const gone = await xsplice(["unload", "--all", name]);
    assert.equal(gone.status, 0, gone.stderr);
  } finally {
    await t.kill();
  }
});

test("-j and --all are checked: -j without --all, a bad -j, --all with a PID", async () => {
  const a = await xsplice(["load", "1", file, "-j", "2"]);
  assert.equal(a.status, 1);
  assert.match(a.stderr, /^xsplice: load .*: EINVAL: -j is only for --all\n$/);
  const b = await xsplice(["revert", "--all", name, "-j", "0"]);
  assert.equal(b.status, 1);
  assert.match(b.stderr, /EINVAL: -j 0 is not a number of jobs from 1 to 256\n$/);
  const c = await xsplice(["unload", "--all", "1", name]);
  assert.equal(c.status, 1);
  assert.match(c.stderr, /EINVAL: wrong number of arguments; usage: xsplice unload --all NAME\n$/);
});
