import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { test } from "node:test";
import { XspliceError } from "../errors.ts";
import { describeTracer, tracerInfo, tracerOf } from "./tracer.ts";

async function until(cond: () => boolean, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (cond()) return true;
    await new Promise((r) => setTimeout(r, 20));
  }
  return cond();
}

test("tracerOf is 0 for an untraced process and the strace pid while strace is attached", async () => {
  const target = spawn("/usr/bin/sleep", ["30"], { stdio: "ignore" });
  const pid = target.pid!;
  let strace: ReturnType<typeof spawn> | undefined;
  try {
    assert.equal(tracerOf(pid), 0);
    assert.equal(tracerInfo(pid), undefined);
    assert.equal(describeTracer(pid), undefined);
    strace = spawn("strace", ["-p", String(pid), "-o", "/dev/null"], { stdio: "ignore" });
    assert.ok(await until(() => tracerOf(pid) !== 0, 5000), "strace attached");
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
