/**
 * A library target that no running process maps when its payload is
 * installed (docs/agent.md "A library no process maps yet"): the agent finds
 * the library's file from the payload's hints (`target-file=`,
 * `target-soname=`, written by `xsplice build`), checks its build-id and has
 * the gate mark its inode, so the very first process that loads it — at
 * start-up or by `dlopen` — runs only the patched version.
 */
import assert from "node:assert/strict";
import { copyFileSync, mkdirSync, readFileSync, renameSync } from "node:fs";
import { join, resolve } from "node:path";
import { after, before, test } from "node:test";
import { readPayload } from "../../src/payload/index.ts";
import { tempDir } from "../cli/_run.ts";
import { startTarget, type Target } from "../helpers/target.ts";
import { runOnce, type SpawnedAgent, spawnAgent, until } from "./_agent.ts";
import { agentPayload } from "./_fixture.ts";
import { FIXED, libraryFixtures, mapsFile, threads } from "./_library.ts";

let lib: string;
let user: string;
let opener: string;
let agent: SpawnedAgent | undefined;
const targets: Target[] = [];
const tmp = tempDir("libfile");

before(async () => {
  ({ lib, user, opener } = libraryFixtures());
  const fix = agentPayload("lib-fix.c", lib);
  assert.equal(readPayload(readFileSync(fix)).metadata["target-file"], resolve(lib));
  const dir = join(tmp.dir, "payloads");
  const state = join(tmp.dir, "state");
  mkdirSync(dir);
  mkdirSync(state);
  agent = spawnAgent(dir, state, [], { ownGroup: true });
  await agent.ready;
  copyFileSync(fix, join(dir, ".lib-fix.tmp"));
  renameSync(join(dir, ".lib-fix.tmp"), join(dir, "lib-fix.xsplice"));
  const a = agent;
  // Marked through its file (the path the payload names), not through a process's map_files.
  const marked = `library gate: marked ${resolve(lib)}`;
  await until("the library file marked", () => a.stderr().includes(marked), a, 10_000).catch((e) => {
    throw new Error(`${e.message}: ${a.stderr()}`);
  });
});

after(async () => {
  try {
    await agent?.stop().catch(() => undefined);
    const a = agent;
    if (a)
      await until("the agent's gate and workers gone", () => a.groupLeft().length === 0, undefined, 20_000);
  } finally {
    await Promise.all(targets.map((t) => t.kill()));
    tmp.remove();
  }
});

test("the first processes that link the library run only the patched version", async () => {
  for (let i = 0; i < 5; i++)
    assert.equal(await runOnce(user), `first=${FIXED} old_calls=0\n`, `start ${i}: ${agent?.stderr()}`);
});

test("the first process that dlopens it answers patched on its first call, and is left untraced", async () => {
  const t = await startTarget(opener, [lib]);
  targets.push(t);
  assert.equal(mapsFile(t.pid, lib), false);
  const from = t.lines.length;
  t.send("go");
  assert.equal(await t.waitFor(/^(first=|dlopen:)/, { from }), `first=${FIXED} old_calls=0`, agent?.stderr());
  await until("released", () => threads(t.pid).every((th) => th.tracer === 0 && th.state !== "t"), agent);
  assert.equal(agent?.stderr().match(/library gate: pid|exec gate: pid|cannot mark/g), null, agent?.stderr());
});
