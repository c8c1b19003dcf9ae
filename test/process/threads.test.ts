/**
 * Seize, quiesce, resume and detach on a real multi-threaded process
 * (test/fixtures/process/target.c): results stay right, no thread is lost,
 * queued signals all arrive, blocked system calls carry on (SPEC §6, §12).
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { connect } from "node:net";
import { after, before, describe, it } from "node:test";
import { decodeRegs, REG_OFFSET, REGS_SIZE } from "../../src/arch/host.ts";
import { SIGRTMIN, sigqueue } from "../../src/process/libc.ts";
import { peekBytes, readMemory, writeMemory } from "../../src/process/memory.ts";
import { Tracee, threadStateLetter, withStoppedProcess } from "../../src/process/threads.ts";
import { compileC } from "../helpers/cc.ts";
import { startTarget, symbolAddress, type Target } from "../helpers/target.ts";
import { WAIT_MS, waitNewSleeper } from "../helpers/wait.ts";

const exe = compileC({ sources: ["process/target.c"], kind: "exe", libs: ["-lpthread"] });

interface Status {
  progress: number;
  errors: number;
  rt: number;
  rtsum: number;
}

async function status(t: Target): Promise<Status> {
  const from = t.lines.length;
  t.send("status");
  const line = await t.waitFor(/^status /, { from });
  const m = /progress=(\d+) errors=(\d+) rt=(\d+) rtsum=(\d+)/.exec(line)!;
  return { progress: Number(m[1]), errors: Number(m[2]), rt: Number(m[3]), rtsum: Number(m[4]) };
}

/**
 * Ask for the status until `done(status)` holds or `timeoutMs` passes; returns the last answer, which
 * the caller asserts on. Needed after a detach: a signal may still be queued (every worker was stopped
 * before it could dequeue it), or dequeued with its handler frame set up but the handler not yet run
 * (the thread was interrupted on its way back to user mode). Either way it is counted only once a
 * worker gets the CPU, and on a loaded machine the main thread can answer "status" before that. The
 * wait makes the read later, never the check looser: callers still require the exact count and sum.
 */
async function statusWhen(t: Target, done: (s: Status) => boolean, timeoutMs = WAIT_MS): Promise<Status> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const s = await status(t);
    if (done(s) || performance.now() > deadline) return s;
    await new Promise((r) => setTimeout(r, 2));
  }
}

function tasks(pid: number): number[] {
  return readdirSync(`/proc/${pid}/task`)
    .map(Number)
    .sort((a, b) => a - b);
}

function accepted(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect(port, "127.0.0.1");
    let got = "";
    s.setEncoding("utf8");
    s.on("data", (d: string) => {
      got += d;
    });
    s.on("end", () => resolve(got));
    s.on("error", reject);
  });
}

describe("threads: stop and resume a 4-worker process", () => {
  let t: Target;
  before(async () => {
    t = await startTarget(exe, ["4", "spin"]);
  });
  after(() => t.kill());

  it("seize stops every thread listed in /proc/PID/task", () => {
    withStoppedProcess(t.pid, {}, (tr) => {
      assert.deepEqual(tr.threads, tasks(t.pid));
      // 4 workers + acceptor + poller + main
      assert.equal(tr.threads.length, 7);
      for (const tid of tr.threads) assert.equal(threadStateLetter(t.pid, tid), "t", `tid ${tid} is stopped`);
      assert.ok(tr.stopped);
    });
    for (const tid of tasks(t.pid)) assert.notEqual(threadStateLetter(t.pid, tid), "t");
  });

  it("1,000 quiesce/resume cycles with queued SIGRTMIN: no wrong result, no thread lost, every signal arrives", async () => {
    const before = await status(t);
    const sleepLine = t.lines.length;
    const known = tasks(t.pid);
    t.send("sleep 300"); // a thread in nanosleep across the cycles
    await waitNewSleeper(t.pid, known);
    const tr = Tracee.seize(t.pid);
    let sent = 0;
    let valueSum = 0;
    try {
      for (let i = 0; i < 1000; i++) {
        if (i % 5 === 0) {
          // Queued while every thread is stopped: must stay queued and all be delivered.
          sigqueue(t.pid, SIGRTMIN, BigInt(i + 1));
          sent++;
          valueSum += i + 1;
        }
        tr.resume();
        tr.quiesce();
      }
      // No thread lost: the tracee holds exactly the threads the kernel lists (the sleeper may have ended).
      assert.deepEqual(tr.threads, tasks(t.pid));
      assert.ok(tr.threads.length >= 7);
    } finally {
      tr.detach();
    }
    const slept = Number(/^slept (\d+)/.exec(await t.waitFor(/^slept /, { from: sleepLine }))![1]);
    const afterCycles = await statusWhen(t, (s) => s.rt - before.rt >= sent);
    assert.equal(afterCycles.errors, 0, "no worker computed a wrong result");
    assert.ok(afterCycles.progress > before.progress, "workers progressed");
    assert.equal(afterCycles.rt - before.rt, sent, `all ${sent} queued SIGRTMIN delivered`);
    assert.equal(afterCycles.rtsum - before.rtsum, valueSum, "each with its value");
    // nanosleep keeps its total: not cut short by the stops (the fixture prints ERROR if it fails with
    // EINTR). How much longer than 300 ms it took depends on the machine's load, not on xsplice.
    assert.ok(slept >= 300, `nanosleep(300ms) took ${slept} ms`);
    assert.ok(
      !t.lines.some((l) => l.startsWith("ERROR")),
      t.lines.filter((l) => l.startsWith("ERROR")).join("\n"),
    );
  });

  it("200 seize/detach cycles keep the process running correctly, signals at the seize and the detach all arrive", async () => {
    const before = await status(t);
    let sent = 0;
    let valueSum = 0;
    const queue = (value: number) => {
      sigqueue(t.pid, SIGRTMIN, BigInt(value));
      sent++;
      valueSum += value;
    };
    for (let i = 0; i < 200; i++) {
      // While running, just before the seize: a worker may dequeue it while being stopped.
      if (i % 3 === 0) queue(1000 + i);
      withStoppedProcess(t.pid, {}, (tr) => {
        assert.equal(tr.threads.length, 7);
        // While stopped: must stay queued through the detach.
        if (i % 3 === 1) queue(2000 + i);
        if (i % 3 === 2) {
          // Queued, then resumed: a worker dequeues it at once, so detach() must stop a thread that sits
          // in (or is about to enter) a signal-delivery-stop, and pass the signal on, not drop it.
          queue(3000 + i);
          tr.resume();
        }
      });
    }
    const afterCycles = await statusWhen(t, (s) => s.rt - before.rt >= sent);
    assert.equal(afterCycles.errors, 0);
    assert.ok(afterCycles.progress > before.progress);
    assert.equal(
      afterCycles.rt - before.rt,
      sent,
      `all ${sent} SIGRTMIN queued around seize/detach delivered`,
    );
    assert.equal(afterCycles.rtsum - before.rtsum, valueSum, "each with its value");
    assert.deepEqual(tasks(t.pid).length, 7);
  });

  it("threads blocked in read, accept and epoll_wait continue after cycles", async () => {
    withStoppedProcess(t.pid, {}, (tr) => {
      for (let i = 0; i < 50; i++) {
        tr.resume();
        tr.quiesce();
      }
    });
    // read: the main thread answers a command written after the cycles
    const s = await status(t);
    assert.equal(s.errors, 0);
    // accept
    const port = Number(/port=(\d+)/.exec(t.readyLine)![1]);
    assert.equal(await accepted(port), "accepted\n");
    // epoll_wait
    const from = t.lines.length;
    t.send("poke");
    assert.equal(await t.waitFor(/^epoll woke/, { from }), "epoll woke 1");
  });

  it("reads and writes memory, also on read-only code pages", () => {
    const fn = symbolAddress(t.pid, exe, "xs_args6");
    withStoppedProcess(t.pid, {}, (tr) => {
      const code = readMemory(t.pid, fn, 16);
      // oracle: the same bytes in the executable file
      const off = fileOffsetOf("xs_args6");
      assert.deepEqual(Buffer.from(code), readFileSync(exe).subarray(off, off + 16));
      const patched = Uint8Array.from(code, (b, i) => (i < 3 ? b ^ 0xff : b));
      writeMemory(t.pid, fn, patched);
      assert.deepEqual(readMemory(t.pid, fn, 16), patched);
      // the ptrace fallback sees the same bytes, unaligned
      assert.deepEqual(peekBytes(t.pid, tr.threads[0]!, fn + 1n, 5), patched.subarray(1, 6));
      writeMemory(t.pid, fn, code);
      assert.deepEqual(readMemory(t.pid, fn, 16), code);
    });
  });

  it("regsInto leaves the same registers as regs, raw, at REG_OFFSET", () => {
    let kept: Tracee | undefined;
    withStoppedProcess(t.pid, {}, (tr) => {
      kept = tr;
      const buf = Buffer.alloc(REGS_SIZE);
      for (const tid of tr.threads) {
        buf.fill(0xa5);
        tr.regsInto(tid, buf);
        const regs = tr.regs(tid);
        assert.deepEqual(decodeRegs(buf), regs, `registers of ${tid}`);
        assert.equal(buf.readBigUInt64LE(REG_OFFSET.rip), regs.rip);
        assert.equal(buf.readBigUInt64LE(REG_OFFSET.rsp), regs.rsp);
      }
      assert.throws(
        () => tr.regsInto(tr.threads[0]!, Buffer.alloc(REGS_SIZE - 8)),
        (e: Error & { errno?: string }) => e.errno === "EINVAL" && /208 bytes/.test(e.message),
      );
    });
    assert.throws(
      () => kept!.regsInto(t.pid, Buffer.alloc(REGS_SIZE)),
      (e: Error & { errno?: string }) => e.errno === "ESRCH",
    );
  });

  it("unmapped memory is EFAULT naming the address", () => {
    assert.throws(
      () => readMemory(t.pid, 0x10n, 8),
      (e: Error & { errno?: string }) => e.errno === "EFAULT" && /0x10/.test(e.message),
    );
    assert.throws(
      () => writeMemory(t.pid, 0x10n, new Uint8Array(4)),
      (e: Error & { errno?: string }) => e.errno === "EFAULT",
    );
  });
});

/** File offset of a symbol: its nm value minus the .text address plus the .text file offset (readelf -S). */
function fileOffsetOf(sym: string): number {
  const nm = execFileSync("nm", [exe], { encoding: "utf8" });
  const value = BigInt(
    `0x${
      nm
        .split("\n")
        .find((l) => l.endsWith(` ${sym}`))!
        .split(" ")[0]
    }`,
  );
  const sections = execFileSync("readelf", ["-SW", exe], { encoding: "utf8" });
  const m = /\.text\s+PROGBITS\s+([0-9a-f]+)\s+([0-9a-f]+)/.exec(sections)!;
  return Number(value - BigInt(`0x${m[1]}`) + BigInt(`0x${m[2]}`));
}
