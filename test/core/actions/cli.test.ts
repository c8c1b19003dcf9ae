/**
 * `xsplice apply/revert/replace/load` as subprocesses through bin/xsplice.js
 * (SPEC §10): text and `--json`, the stop window, exit status 0 / 2 (EBUSY) /
 * 1, one-line errors, and `load` unloading again when its apply fails.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { after, before, test } from "node:test";
import { get, list } from "../../../src/core/api.ts";
import { ROOT } from "../../helpers/cc.ts";
import { startTarget, type Target } from "../../helpers/target.ts";
import { actionPayload, actionsTarget } from "./_hand.ts";
import { callOld, oldFormula } from "./_target.ts";

let exe: string;
let t: Target;

before(async () => {
  exe = actionsTarget(true);
  t = await startTarget(exe, ["1"]);
});
after(async () => {
  await t.kill();
});

/** Run the CLI asynchronously (the target must keep being served meanwhile). */
function cli(...args: string[]): Promise<{ status: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const c = spawn(process.execPath, [`${ROOT}/bin/xsplice.js`, ...args], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    c.stdout.on("data", (d) => {
      stdout += d;
    });
    c.stderr.on("data", (d) => {
      stderr += d;
    });
    c.on("exit", (code) => resolve({ status: code ?? -1, stdout, stderr }));
  });
}

test("load (name from the file), revert, apply --json, replace, errors with their exit status", async () => {
  const pid = String(t.pid);
  const file = actionPayload("fix.c", exe); // fix-<hash>.xsplice → name fix-<hash>
  const name = file
    .split("/")
    .pop()!
    .replace(/\.xsplice$/, "");
  const loaded = await cli("load", pid, file);
  assert.equal(loaded.status, 0, loaded.stderr);
  assert.match(
    loaded.stdout,
    new RegExp(
      `^applied ${name} in ${pid}: state APPLIED, threads stopped [0-9.]+ ms for the writes \\([0-9.]+ ms in \\d+ stops in all\\)\\n$`,
    ),
  );
  assert.equal(loaded.stderr, "");
  assert.equal(await callOld(t, 1), oldFormula(1n) + 1000n);

  const busy = await cli("revert", pid, "nope");
  assert.equal(busy.status, 1);
  assert.equal(busy.stderr, `xsplice: revert nope in ${pid}: ENOENT: no payload named 'nope'\n`);

  const rev = await cli("revert", pid, name, "--json");
  assert.equal(rev.status, 0);
  const doc = JSON.parse(rev.stdout);
  assert.equal(doc.state, "CHECKED");
  assert.equal(doc.action, "REVERT");
  assert.ok(doc.stopWindowMs > 0);
  // Every stop of the run is reported: a revert without hooks is one stop (the safe stop, detached from).
  assert.equal(doc.pause.stops, 1, `stops: ${doc.pause.stops}`);
  assert.ok(doc.pause.totalMs >= doc.stopWindowMs, `pause ${doc.pause.totalMs} < window ${doc.stopWindowMs}`);
  assert.ok(doc.pause.longestMs <= doc.pause.totalMs);
  assert.deepEqual(doc.warnings, []);

  const again = await cli("revert", pid, name, "--json");
  assert.equal(again.status, 1);
  assert.equal(JSON.parse(again.stdout).error, "EINVAL");

  const app = await cli("apply", pid, name, "--timeout", "50");
  assert.equal(app.status, 0, app.stderr);
  const bad = await cli("apply", pid, name, "--timeout", "soon");
  assert.equal(bad.status, 1);
  assert.match(bad.stderr, /^xsplice: apply .* EINVAL: --timeout soon is not a number of milliseconds\n$/);

  // A payload for a function a thread is parked in: EBUSY, exit status 2; load unloads it again.
  const from = t.lines.length;
  t.send("park");
  await t.waitFor(/^parked$/, { from });
  const parkedFix = actionPayload("park.c", exe);
  // --retry-for 0: one try, the plain SPEC §10 line; by default the EBUSY is retried for 5 s,
  // and the last error says how many tries it took.
  const failed = await cli("load", pid, parkedFix, "--name", "pk", "--nodeps", "--retry-for", "0");
  assert.equal(failed.status, 2);
  assert.match(
    failed.stderr,
    /^xsplice: load pk in \d+: EBUSY: parked_fn is on the stack of thread \d+ \(30 ms\)\n$/,
  );
  const retried = await cli("load", pid, parkedFix, "--name", "pk", "--nodeps", "--retry-for", "300ms");
  assert.equal(retried.status, 2);
  assert.match(
    retried.stderr,
    /^xsplice: load pk in \d+: EBUSY: parked_fn is on the stack of thread \d+ \(30 ms\) \(after \d+ tries in \d+ ms\)\n$/,
  );
  assert.equal(
    (await list(t.pid)).payloads.some((p) => p.name === "pk"),
    false,
    "unloaded again",
  );

  const rep = await cli("replace", pid, name);
  assert.equal(rep.status, 1, "already applied");
  assert.match(rep.stderr, /EINVAL: '.*' is already applied/);
  assert.equal((await get(t.pid, name)).state, "APPLIED");
});
