/**
 * The target session and the registry mapping in a real process: the seize is
 * the lock, the registry appears by name in /proc/PID/maps, is readable from
 * outside without stopping, and survives into the next session.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { readdirSync, readlinkSync } from "node:fs";
import { after, before, describe, it } from "node:test";
import { commitUploaded } from "../../../src/core/actions.ts";
import { emptyRegistry } from "../../../src/core/registry/records.ts";
import {
  ANON_REGISTRY_PATH,
  findRegistry,
  isRegistryMapping,
  MEMFD_REGISTRY_PATH,
  readTargetRegistry,
} from "../../../src/core/registry/remote.ts";
import { openTarget } from "../../../src/core/session.ts";
import { XspliceError } from "../../../src/errors.ts";
import { readMaps } from "../../../src/process/maps.ts";
import { tracerOf } from "../../../src/process/tracer.ts";
import { compileC } from "../../helpers/cc.ts";
import { payloadRecord } from "../../helpers/records.ts";
import { startTarget, type Target } from "../../helpers/target.ts";
import { waitUntil } from "../../helpers/wait.ts";

const exe = compileC({ sources: ["process/nthreads.c"], kind: "exe", libs: ["-lpthread"] });

function isErr(errno: string, re?: RegExp) {
  return (e: unknown) => e instanceof XspliceError && e.errno === errno && (!re || re.test(e.message));
}

describe("target session", () => {
  let t: Target;
  before(async () => {
    t = await startTarget(exe, ["3"]);
  });
  after(async () => {
    await t.kill();
  });

  it("opens held and running with an empty registry, creates it on the first commit, detaches on close", () => {
    assert.equal(findRegistry(t.pid), undefined);
    assert.equal(readTargetRegistry(t.pid), undefined);
    const s = openTarget(t.pid);
    try {
      assert.ok(!s.tracee.stopped);
      assert.equal(s.tracee.threads.length, 3);
      assert.equal(s.base, undefined);
      assert.deepEqual(s.state, emptyRegistry());
      assert.equal(tracerOf(t.pid), process.pid);
      s.commit(commitUploaded(s.state, payloadRecord("one")));
      assert.ok(!s.tracee.stopped, "commit that creates the registry resumes afterwards");
      assert.notEqual(s.base, undefined);
      assert.equal(s.generation, 1n);
    } finally {
      s.close();
    }
    assert.equal(tracerOf(t.pid), 0);
    const maps = readMaps(t.pid).filter(isRegistryMapping);
    assert.equal(maps.length, 1, "one mapping named xsplice-registry");
    assert.ok([ANON_REGISTRY_PATH, MEMFD_REGISTRY_PATH].includes(maps[0]!.path));
    assert.equal(maps[0]!.perms.shared, false, "MAP_PRIVATE, so a fork gets its own copy");
    assert.equal(maps[0]!.perms.write, false, "read-only to the target itself");
    const snap = readTargetRegistry(t.pid);
    assert.deepEqual(
      snap?.state.payloads.map((p) => p.name),
      ["one"],
    );
    // No fd of ours left behind in the target (the memfd fallback closes it).
    const fds = readdirSync(`/proc/${t.pid}/fd`).map((fd) => readlinkSync(`/proc/${t.pid}/fd/${fd}`));
    assert.ok(!fds.some((l) => l.includes("xsplice")), fds.join(", "));
  });

  it("a second session sees the committed state and commits on top (generation advances)", () => {
    const s = openTarget(t.pid);
    try {
      assert.deepEqual(
        s.state.payloads.map((p) => p.name),
        ["one"],
      );
      const g = s.generation;
      s.commit(commitUploaded(s.state, payloadRecord("two")));
      assert.equal(s.generation, g + 1n);
    } finally {
      s.close();
    }
    assert.deepEqual(
      readTargetRegistry(t.pid)?.state.payloads.map((p) => p.name),
      ["one", "two"],
    );
    assert.equal(readMaps(t.pid).filter(isRegistryMapping).length, 1);
  });

  it("is EBUSY at once while this process already holds the target", () => {
    const s = openTarget(t.pid);
    try {
      // Told to wait an hour: a run that waited instead of refusing would hit the test's timeout.
      assert.throws(
        () => openTarget(t.pid, { waitMs: 3_600_000 }),
        isErr("EBUSY", /already held by this xsplice/),
      );
    } finally {
      s.close();
    }
  });

  it("holds a process with nothing to put right without stopping it: no stop until close", () => {
    const s = openTarget(t.pid);
    try {
      assert.equal(s.tracee.stopped, false);
      assert.equal(s.tracee.stops.stops, 0);
      assert.deepEqual(s.opened, { threadsPutBack: 0 });
    } finally {
      s.close();
    }
  });

  it("is EBUSY at once, naming the tracer, when strace holds the target", async () => {
    const st = spawn("strace", ["-p", String(t.pid), "-o", "/dev/null"], { stdio: "ignore" });
    try {
      await waitUntil("strace to attach", () => tracerOf(t.pid) === st.pid);
      // Told to wait an hour: a run that waited for strace instead of refusing would hit the test's timeout.
      assert.throws(
        () => openTarget(t.pid, { waitMs: 3_600_000 }),
        isErr("EBUSY", /already traced by .*strace/),
      );
    } finally {
      st.kill("SIGKILL");
      await new Promise((r) => st.once("exit", r));
    }
    await waitUntil("strace to let go", () => tracerOf(t.pid) === 0);
  });

  it("is ESRCH for a pid that does not exist", () => {
    assert.throws(() => openTarget(0x3ffffff), isErr("ESRCH"));
  });
});
