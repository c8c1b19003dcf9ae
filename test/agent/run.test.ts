/**
 * `xsplice run -- CMD` (SPEC §14, issue #14 item 2): the program starts with
 * the matching payloads applied before its main — its own output shows the
 * original function never ran — or is not started at all when a payload is
 * refused; its exit status is run's.
 */
import assert from "node:assert/strict";
import { copyFileSync, existsSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { opensslKeyPair, tempDir, xsplice } from "../cli/_run.ts";
import { agentPayload, agentTarget, FIX_VALUE, OLD_VALUE } from "./_fixture.ts";
import { forkerFixture } from "./_library.ts";

let exe: string;
const tmp = tempDir("run");
const withFix = join(tmp.dir, "with-fix");
const empty = join(tmp.dir, "empty");

before(() => {
  exe = agentTarget();
  mkdirSync(withFix);
  mkdirSync(empty);
  copyFileSync(agentPayload("fix.c", exe), join(withFix, "agent-fix.xsplice"));
});
after(() => tmp.remove());

test("the program runs only the patched function, from the first instruction of main, start after start", async () => {
  for (let i = 0; i < 10; i++) {
    const r = await xsplice(["run", "--payloads", withFix, "--", exe, "once"]);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, `first=${FIX_VALUE} old_calls=0\n`, `start ${i}`);
    assert.match(r.stderr, /^xsplice: run: applied agent-fix in \d+ before main\n$/);
  }
});

test("without a matching payload the program runs unchanged, and its exit status is run's", async () => {
  const r = await xsplice(["run", "--payloads", empty, "--", exe, "once"]);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout, `first=${OLD_VALUE} old_calls=1\n`);
  assert.equal(r.stderr, "");
  // A payload for another object is not applied to a program that does not map it.
  const sh = await xsplice(["run", "--payloads", withFix, "--", "/bin/sh", "-c", "echo hi; exit 3"]);
  assert.equal(sh.status, 3, sh.stderr);
  assert.equal(sh.stdout, "hi\n");
});

test("a refused payload (unsigned, signature required) keeps the program from starting", async () => {
  const keys = opensslKeyPair(tmp.dir, "k", "ed25519");
  const marker = join(tmp.dir, "started");
  const r = await xsplice([
    "run",
    "--payloads",
    withFix,
    "--require-signature",
    "--trusted-key",
    keys.pub,
    "--",
    "/bin/sh",
    "-c",
    `touch ${marker}`,
  ]);
  assert.equal(r.status, 1);
  assert.match(r.stderr, /^xsplice: run \/bin\/sh: EKEYREJECTED: .*agent-fix\.xsplice: .*\n$/);
  assert.equal(existsSync(marker), false);
});

test("a library constructor that forks before the entry point: the child lives and runs main, the program is patched", async () => {
  // The child is forked while the program is held on its way to the entry point. A breakpoint
  // written into memory there would be the child's too (it dies of SIGTRAP: ctor_child=signal5);
  // a debug register is the traced thread's alone.
  const forking = forkerFixture();
  const dir = join(tmp.dir, "forker");
  mkdirSync(dir);
  copyFileSync(agentPayload("fix.c", forking), join(dir, "agent-fix.xsplice"));
  for (let i = 0; i < 3; i++) {
    const r = await xsplice(["run", "--payloads", dir, "--", forking, "once"]);
    assert.equal(r.status, 0, r.stderr);
    const lines = r.stdout.trim().split("\n");
    // The child's main runs first (the parent waits for it in the constructor), unpatched: it did
    // not exec, and `run` does not trace forks (the agent does: fork.test.ts; docs/agent.md).
    assert.deepEqual(
      lines,
      [`first=${OLD_VALUE} old_calls=1`, `first=${FIX_VALUE} old_calls=0`, "ctor_child=exit0"],
      `start ${i}`,
    );
  }
});

test("a command that does not exist is ENOENT", async () => {
  const r = await xsplice(["run", "--payloads", empty, "--", join(tmp.dir, "no-such-program")]);
  assert.equal(r.status, 1);
  assert.match(r.stderr, /xsplice: run .*no-such-program: ENOENT: .*no-such-program: command not found\n$/);
});
