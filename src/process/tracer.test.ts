import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { test } from "node:test";
import { waitUntil } from "../../test/helpers/wait.ts";
import { XspliceError } from "../errors.ts";
import { describeTracer, tracerInfo, tracerOf } from "./tracer.ts";

test("tracerOf is 0 for an untraced process and the strace pid while strace is attached", async () => {
  const target = spawn("/usr/bin/sleep", ["30"], { stdio: "ignore" });
  const pid = target.pid!;
  let strace: ReturnType<typeof spawn> | undefined;
  try {
    assert.equal(tracerOf(pid), 0);
    assert.equal(tracerInfo(pid), undefined);
    assert.equal(describeTracer(pid), undefined);
    strace = spawn("strace", ["-p", String(pid), "-o", "/dev/null"], { stdio: "ignore" });
    await waitUntil("strace to attach", () => tracerOf(pid) !== 0);
    assert.equal(tracerOf(pid), strace.pid);
    assert.deepEqual(tracerInfo(pid), { pid: strace.pid, comm: "strace" });
    assert.equal(describeTracer(pid), `already traced by PID ${strace.pid} (strace)`);
  } finally {
    strace?.kill("SIGKILL");
    target.kill("SIGKILL");
  }
});

test("tracerOf of a process that is gone is ESRCH", async () => {
  const child = spawn("/bin/true", [], { stdio: "ignore" });
  await new Promise((r) => child.on("exit", r));
  assert.throws(
    () => tracerOf(child.pid!),
    (e: unknown) => e instanceof XspliceError && e.errno === "ESRCH",
  );
});
