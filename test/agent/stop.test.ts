/**
 * The agent stops, and its gate and workers end, on a host where nothing
 * execs. The gate reads fanotify events on a pool thread; a read blocked
 * until the next exec once kept the gate's exit — and so the agent's, which
 * waits for its children — for as long as the host stayed quiet (minutes on
 * an idle CI machine, never on a busy one). A private tmpfs, gated alone,
 * is such a quiet host whatever else the machine runs.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { chmodSync, copyFileSync, mkdirSync, renameSync } from "node:fs";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { tempDir, xsplice } from "../cli/_run.ts";
import { runOnce, spawnAgent, until } from "./_agent.ts";
import { agentPayload, agentTarget, FIX_VALUE } from "./_fixture.ts";

const tmp = tempDir("agent-stop");
const quiet = join(tmp.dir, "quiet");
let mounted = false;
let exe: string;
let fix: string;

before(() => {
  exe = agentTarget();
  fix = agentPayload("fix.c", exe);
  mkdirSync(quiet);
  execFileSync("mount", ["-t", "tmpfs", "-o", "size=16m", "xsplice-quiet", quiet]);
  mounted = true;
});
after(() => {
  if (mounted) execFileSync("umount", ["-l", quiet]);
  tmp.remove();
});

test("SIGTERM ends the agent, its gate and its workers with no exec on the gated filesystem", async () => {
  const dir = join(tmp.dir, "d");
  const state = join(tmp.dir, "s");
  mkdirSync(dir);
  mkdirSync(state);
  // The target lives on the quiet filesystem, so the gate sees its exec and nothing else.
  const quietExe = join(quiet, "agent-target");
  copyFileSync(exe, quietExe);
  chmodSync(quietExe, 0o755);
  copyFileSync(fix, join(dir, ".fix.tmp"));
  renameSync(join(dir, ".fix.tmp"), join(dir, "fix.xsplice"));
  const agent = spawnAgent(dir, state, [], { ownGroup: true, gateMount: quiet });
  try {
    await agent.ready;
    assert.ok(agent.groupLeft().length >= 2, "the agent runs a gate and workers");
    // The gate works on this filesystem: a new process is parked and patched before main.
    assert.equal(await runOnce(quietExe), `first=${FIX_VALUE} old_calls=0\n`);
    // Now nothing execs there: the gate's read stays blocked while it is asked to stop.
    assert.equal(await agent.stop(), 0, agent.stderr());
    await until("the agent's gate and workers gone", () => agent.groupLeft().length === 0);
  } finally {
    await agent.kill();
  }
});

test("a second agent on the host is refused with EBUSY naming the first, which serves on; after it, one starts", async () => {
  const dirs = ["d1", "s1", "d2", "s2"].map((n) => join(tmp.dir, n));
  for (const d of dirs) mkdirSync(d);
  const first = spawnAgent(dirs[0]!, dirs[1]!, [], { ownGroup: true, gateMount: quiet });
  try {
    await first.ready;
    const second = await xsplice([
      "agent",
      "--dir",
      dirs[2]!,
      "--socket",
      join(dirs[3]!, "agent.sock"),
      "--no-gate",
    ]);
    assert.equal(second.status, 2, second.stderr); // EBUSY: the exit status of a busy target (docs/spec.md: 2 is worth retrying)
    assert.equal(
      second.stderr,
      `xsplice: agent: EBUSY: another xsplice agent (pid ${first.child.pid}) holds /run/xsplice/agent.lock: one agent per host, since each reverts the payloads the other applied\n`,
    );
    assert.ok(first.child.exitCode === null, "the first agent still runs");
  } finally {
    assert.equal(await first.stop(), 0);
  }
  // The lock went with the first agent (as it would with a SIGKILL: the kernel drops it).
  const next = spawnAgent(dirs[2]!, dirs[3]!, [], { ownGroup: true, gateMount: quiet });
  try {
    await next.ready;
  } finally {
    assert.equal(await next.stop(), 0);
  }
});
