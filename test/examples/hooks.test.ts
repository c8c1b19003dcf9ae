/**
 * Example 3 (examples/hooks/): a payload with load/unload and
 * pre/post-apply/revert hooks, end to end: build the target, start it, build
 * the payload with `xsplice build`, `xsplice load`, observe the hooks' state
 * change and messages and the new function, `xsplice revert`, observe the
 * old state, and a pre-apply veto.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { test } from "node:test";
import { runXsplice } from "../../examples/lib/xsplice.ts";
import {
  ask,
  buildExamplePayload,
  outDir,
  programForFile,
  requireCommands,
  stateOf,
  xs,
} from "./_examples.ts";

const greeter = programForFile("greeter");
const status = () => ask(greeter.program, "status", /^status /);
const greet = (who: string) => ask(greeter.program, `greet ${who}`, /^greeting: /);

test("the unpatched greeter greets and reports its state", async () => {
  assert.equal(await greet("ann"), "greeting: hello, ann");
  assert.equal(await status(), "status config_version=1 maintenance=0");
});

test("the payload carries one replacement, six hook slots and the target's symbols", async () => {
  const out = join(outDir(), "hooks.xsplice");
  const built = await buildExamplePayload("hooks/hooks.c", greeter.exe, out);
  assert.deepEqual(
    built.funcs.map((f) => [f.name, f.replacement]),
    [["format_greeting", "format_greeting_v2"]],
  );
  assert.deepEqual(built.symbols.map((s) => s.name).sort(), ["config_version", "maintenance"]);
  const doc = await xs(["inspect", out]);
  assert.deepEqual(doc["hooks"], {
    load: ["on_load"],
    unload: ["on_unload"],
    preapply: "pre_apply",
    postapply: "post_apply",
    prerevert: "pre_revert",
    postrevert: "post_revert",
  });
});

test("load: hooks migrate state and report; revert: hooks undo it", async () => {
  await requireCommands();
  const out = join(outDir(), "hooks.xsplice");
  await buildExamplePayload("hooks/hooks.c", greeter.exe, out);
  const pid = String(greeter.program.pid);
  const from = greeter.program.lines.length;

  await xs(["load", pid, out, "--name", "greet-v2"]);
  assert.equal(await stateOf(greeter.program.pid, "greet-v2"), "APPLIED");
  await greeter.program.waitFor(/^hook: postapply /, { from });
  const hookLines = () => greeter.program.lines.slice(from).filter((l) => l.startsWith("hook: "));
  assert.deepEqual(hookLines(), [
    "hook: preapply greet-v2 rc=0 funcs=1",
    "hook: postapply greet-v2 rc=0 funcs=1",
  ]);
  assert.equal(await status(), "status config_version=101 maintenance=0", "the load hook ran once");
  assert.equal(await greet("bob"), "greeting: hello, bob (config v101)");

  await xs(["revert", pid, "greet-v2"]);
  await greeter.program.waitFor(/^hook: postrevert /, { from });
  assert.deepEqual(hookLines().slice(2), [
    "hook: prerevert greet-v2 rc=0 funcs=1",
    "hook: postrevert greet-v2 rc=0 funcs=1",
  ]);
  assert.equal(
    await status(),
    "status config_version=1 maintenance=0",
    "the unload hook undid the load hook",
  );
  assert.equal(await greet("bob"), "greeting: hello, bob");
  await xs(["unload", pid, "greet-v2"]);
});

test("a pre-apply veto keeps the old code and state, and becomes the action's rc", async () => {
  await requireCommands();
  const out = join(outDir(), "hooks.xsplice");
  await buildExamplePayload("hooks/hooks.c", greeter.exe, out);
  const pid = String(greeter.program.pid);
  await ask(greeter.program, "maintenance on", /^status .*maintenance=1/);
  const from = greeter.program.lines.length;

  const load = await runXsplice(["load", pid, out, "--name", "vetoed", "--json"]);
  assert.notEqual(load.status, 0, `load must fail while the target is in maintenance: ${load.stdout}`);
  assert.equal((load.json as { error?: string } | undefined)?.error, "EBUSY", load.stdout);
  assert.equal(load.status, 2, "EBUSY is worth retrying (SPEC §10)");
  await greeter.program.waitFor(/^hook: preapply refused/, { from });
  assert.equal(await greet("cy"), "greeting: hello, cy");
  assert.equal(await status(), "status config_version=1 maintenance=1", "no load hook ran");
  // `load` unloads again when the apply fails (SPEC §10).
  await xs(["get", pid, "vetoed"], 1);
  await ask(greeter.program, "maintenance off", /^status .*maintenance=0/);
});
