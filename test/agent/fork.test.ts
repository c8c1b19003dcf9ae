/**
 * A new process of a target whose library constructor forks before the
 * program's entry point, with the agent running (docs/agent.md, "parking at
 * the entry point"): the child runs the program's `main` too, so the exec
 * gate traces it from its fork (`PTRACE_O_TRACEFORK`, only on the way to the
 * entry), parks it at the same entry and has it patched like its parent; a
 * child that execs a program that is not a target is let go untraced.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { copyFileSync, mkdirSync, renameSync } from "node:fs";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { tempDir } from "../cli/_run.ts";
import { type SpawnedAgent, spawnAgent, until } from "./_agent.ts";
import { agentPayload, FIX_VALUE } from "./_fixture.ts";
import { endLibraryTest, forkerFixture } from "./_library.ts";

let exe: string;
let agent: SpawnedAgent | undefined;
const tmp = tempDir("agent-fork");

function runForker(env: Record<string, string> = {}): Promise<string> {
  return new Promise((resolve, reject) =>
    execFile(exe, ["once"], { timeout: 30_000, env: { ...process.env, ...env } }, (err, out) =>
      err ? reject(err) : resolve(out),
    ),
  );
}

before(async () => {
  exe = forkerFixture();
  const dir = join(tmp.dir, "payloads");
  const state = join(tmp.dir, "state");
  mkdirSync(dir);
  mkdirSync(state);
  const a = spawnAgent(dir, state, [], { ownGroup: true });
  agent = a;
  await a.ready;
  copyFileSync(agentPayload("fix.c", exe), join(dir, ".fix.tmp"));
  renameSync(join(dir, ".fix.tmp"), join(dir, "fix.xsplice"));
  await until("the payload read", () => /watching/.test(a.stderr()), a);
});

after(() => endLibraryTest(agent, [], tmp));

test("the child a constructor forks before the entry runs only the patched version, as its parent", async () => {
  // The agent may need a scan to take the new file: wait for the first patched start.
  await until("a patched start", async () => (await runForker()).includes(`first=${FIX_VALUE}`), agent);
  for (let i = 0; i < 10; i++) {
    const lines = (await runForker()).trim().split("\n");
    // The child's main runs first: the parent waits for it in the constructor.
    assert.deepEqual(
      lines,
      [`first=${FIX_VALUE} old_calls=0`, `first=${FIX_VALUE} old_calls=0`, "ctor_child=exit0"],
      `start ${i}: ${agent?.stderr()}`,
    );
  }
});

test("a forked child that execs a program that is no target is let go, untraced, and nothing is reported", async () => {
  for (let i = 0; i < 5; i++) {
    const lines = (await runForker({ FORKER_EXEC: "/bin/true" })).trim().split("\n");
    assert.deepEqual(lines, [`first=${FIX_VALUE} old_calls=0`, "ctor_child=exit0"], `start ${i}`);
  }
  assert.equal(agent?.stderr().match(/exec gate: pid/g), null, agent?.stderr());
});
