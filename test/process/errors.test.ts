/**
 * Failure modes of process control: a dead pid, a process traced by someone
 * else, a tracer without permission, a tracer killed while the target is
 * stopped, a target stopped by SIGSTOP.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { dirname, join } from "node:path";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { XspliceError } from "../../src/errors.ts";
import { callError, PTRACE, ptraceInterrupt } from "../../src/process/libc.ts";
import { Tracee, threadStateLetter } from "../../src/process/threads.ts";
import { type PortableCommand, portableCommand } from "../helpers/bundle.ts";
import { compileC } from "../helpers/cc.ts";
import { startTarget, type Target } from "../helpers/target.ts";
import { threadIds, waitUntil } from "../helpers/wait.ts";

const exe = compileC({ sources: ["process/target.c"], kind: "exe", libs: ["-lpthread"] });
const HOLD = join(dirname(fileURLToPath(import.meta.url)), "../fixtures/process/hold.ts");

function isErr(errno: string, re?: RegExp) {
  return (e: unknown) => e instanceof XspliceError && e.errno === errno && (!re || re.test(e.message));
}

async function progress(t: Target): Promise<number> {
  const from = t.lines.length;
  t.send("status");
  return Number(/progress=(\d+)/.exec(await t.waitFor(/^status /, { from }))![1]);
}

/**
 * hold.ts from a copy any user can read: run as uid 65534 it could not read a checkout inside a
 * private directory, and would die before printing its line.
 */
let holdCommand: PortableCommand | undefined;

/** Run hold.ts on `pid` in a child node (optionally as another uid); resolves with the child and its first line. */
async function hold(pid: number, uid?: number) {
  holdCommand ??= portableCommand(HOLD);
  const child = spawn(process.execPath, [...holdCommand.args, String(pid)], {
    stdio: ["ignore", "pipe", "inherit"],
    ...(uid === undefined ? {} : { uid, gid: uid }),
  });
  const line = await new Promise<string>((resolve, reject) => {
    let buf = "";
    child.stdout!.setEncoding("utf8");
    child.stdout!.on("data", (d: string) => {
      buf += d;
      if (buf.includes("\n")) resolve(buf.split("\n")[0]!);
    });
    child.once("exit", (code) => reject(new Error(`hold exited ${code} before a line: ${buf}`)));
  });
  const gone = new Promise<void>((r) => {
    if (child.exitCode !== null || child.signalCode !== null) r();
    else child.once("exit", () => r());
  });
  return { child, line, gone };
}

describe("process control errors", () => {
  let t: Target;
  before(async () => {
    t = await startTarget(exe, ["2", "idle"]);
  });
  after(async () => {
    holdCommand?.dispose();
    await t?.kill();
  });

  it("ESRCH for a pid that does not exist", () => {
    const dead = spawn("true");
    const pid = dead.pid!;
    return new Promise<void>((resolve) => {
      dead.once("exit", () => {
        assert.throws(() => Tracee.seize(pid), isErr("ESRCH", new RegExp(String(pid))));
        assert.throws(() => Tracee.seize(-4), isErr("ESRCH"));
        resolve();
      });
    });
  });

  it("EBUSY naming the tracer when another process already traces the target", async () => {
    const h = await hold(t.pid);
    try {
      assert.match(h.line, /^held (\d+) threads=5$/);
      const tracer = Number(/^held (\d+)/.exec(h.line)![1]);
      assert.throws(() => Tracee.seize(t.pid), isErr("EBUSY", new RegExp(`traced by PID ${tracer} \\(`)));
    } finally {
      h.child.kill("SIGKILL");
      await h.gone;
    }
  });

  it("EBUSY when this process already holds it in another Tracee", () => {
    const first = Tracee.seize(t.pid);
    try {
      assert.throws(() => Tracee.seize(t.pid), isErr("EBUSY", /already traced by PID/));
    } finally {
      first.detach();
    }
  });

  it("EPERM with a hint for an unprivileged tracer (uid 65534 against a root-owned target)", async () => {
    const h = await hold(t.pid, 65534).catch((e: Error) => ({
      line: `spawn failed: ${e.message}`,
      child: undefined,
    }));
    assert.match(h.line, /^error EPERM not permitted to trace process \d+ .*ptrace_scope/);
  });

  it("the errno mapping names the call and tid", () => {
    assert.throws(
      () => ptraceInterrupt(0x7ffffff0),
      isErr("ESRCH", /^ptrace\(PTRACE_INTERRUPT\) tid 2147483632: ESRCH/),
    );
    const e = callError(`ptrace(PTRACE_SEIZE)`, 1, 42, "hint");
    assert.equal(e.errno, "EPERM");
    assert.equal(e.where.tid, 42);
    assert.equal(e.message, "ptrace(PTRACE_SEIZE) tid 42: EPERM (hint)");
    assert.equal(callError("x", 9999).errno, "EIO"); // an errno outside the SPEC's table
    assert.equal(PTRACE.SEIZE, 0x4206);
  });

  it("killing the tracer while the threads are stopped leaves the target running", async () => {
    const h = await hold(t.pid);
    assert.match(h.line, /^held /);
    const tids = (await import("node:fs")).readdirSync(`/proc/${t.pid}/task`).map(Number);
    for (const tid of tids)
      assert.equal(threadStateLetter(t.pid, tid), "t", `tid ${tid} stopped by the holder`);
    h.child.kill("SIGKILL");
    await h.gone;
    const p0 = await progress(t);
    await waitUntil("workers to progress after the tracer died", async () => (await progress(t)) > p0);
    for (const tid of tids) assert.notEqual(threadStateLetter(t.pid, tid), "t");
  });

  it("a process SIGSTOPped by someone else stays stopped through seize, cycles and detach", async () => {
    const tids = threadIds(t.pid);
    const states = () => tids.map((tid) => threadStateLetter(t.pid, tid));
    process.kill(t.pid, "SIGSTOP");
    await waitUntil("every thread to enter the group stop", () => states().every((s) => s === "T"));
    const tr = Tracee.seize(t.pid);
    for (let i = 0; i < 20; i++) {
      tr.resume();
      tr.quiesce();
    }
    tr.resume();
    // Resumed by the tracer, a group-stopped thread stays stopped (it only listens).
    assert.deepEqual(
      states(),
      tids.map(() => "t"),
    );
    tr.detach();
    // A detached thread passes through running on its way back into the group stop; none may stay running.
    await waitUntil(`every thread back in the group stop, not running (${states()})`, () =>
      states().every((s) => s === "T"),
    );
    process.kill(t.pid, "SIGCONT");
    const p0 = await progress(t);
    await waitUntil("workers to progress after SIGCONT", async () => (await progress(t)) > p0);
  });
});
