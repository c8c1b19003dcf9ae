/**
 * A library target that no running process maps when its payload is
 * installed (docs/agent.md "A library no process maps yet"): the agent finds
 * the library's file from the payload's hints (`target-file=`,
 * `target-soname=`, written by `xsplice build`), checks its build-id and has
 * the gate mark its inode, so the very first process that loads it — at
 * start-up or by `dlopen` — runs only the patched version.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { after, before, test } from "node:test";
import { readPayload } from "../../src/payload/index.ts";
import { tempDir } from "../cli/_run.ts";
import { startTarget, type Target } from "../helpers/target.ts";
import { runOnce, type SpawnedAgent, until } from "./_agent.ts";
import { agentPayload } from "./_fixture.ts";
import { endLibraryTest, FIXED, libraryAgent, libraryFixtures, mapsFile, threads } from "./_library.ts";

let lib: string;
let user: string;
let opener: string;
let agent: SpawnedAgent | undefined;
const targets: Target[] = [];
const tmp = tempDir("libfile");

before(async () => {
  ({ lib, user, opener } = libraryFixtures());
  assert.equal(
    readPayload(readFileSync(agentPayload("lib-fix.c", lib))).metadata["target-file"],
    resolve(lib),
  );
  const started = await libraryAgent(tmp.dir, lib);
  const a = started.agent;
  agent = a;
  started.installFix();
  // Marked through its file (the path the payload names), not through a process's map_files.
  const marked = `library gate: marked ${resolve(lib)}`;
  await until("the library file marked", () => a.stderr().includes(marked), a, 10_000).catch((e) => {
    throw new Error(`${e.message}: ${a.stderr()}`);
  });
});

after(() => endLibraryTest(agent, targets, tmp));

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
