/**
 * Remote system calls and function calls in a real multi-threaded process:
 * results come back, registers, FPU state and interrupted system calls are
 * restored, crashes and overruns are reported without killing the target.
 */
import assert from "node:assert/strict";
import { readFileSync, readlinkSync, realpathSync } from "node:fs";
import { after, before, describe, it } from "node:test";
import { XspliceError } from "../../src/errors.ts";
import { readMaps } from "../../src/process/maps.ts";
import { readMemory, writeMemory } from "../../src/process/memory.ts";
import { remoteCall, remoteSyscall } from "../../src/process/remote-call.ts";
import {
  MAP,
  PROT,
  remoteMemfdCreate,
  remoteMmap,
  remoteMprotect,
  remoteMunmap,
  SYS,
} from "../../src/process/syscalls.ts";
import { type Tracee, withStoppedProcess } from "../../src/process/threads.ts";
import { compileC } from "../helpers/cc.ts";
import { startTarget, symbolAddress, type Target } from "../helpers/target.ts";
import { threadIds, waitNewSleeper, waitUntil } from "../helpers/wait.ts";

const exe = compileC({ sources: ["process/target.c"], kind: "exe", libs: ["-lpthread"] });

async function status(t: Target): Promise<{ progress: number; errors: number }> {
  const from = t.lines.length;
  t.send("status");
  const m = /progress=(\d+) errors=(\d+)/.exec(await t.waitFor(/^status /, { from }))!;
  return { progress: Number(m[1]), errors: Number(m[2]) };
}

function mapLine(pid: number, addr: bigint): string | undefined {
  return readFileSync(`/proc/${pid}/maps`, "utf8")
    .split("\n")
    .find((l) => {
      if (l === "") return false;
      const [s, e] = l
        .split(" ")[0]!
        .split("-")
        .map((x) => BigInt(`0x${x}`));
      return s !== undefined && e !== undefined && addr >= s && addr < e;
    });
}

function libcPath(pid: number): string {
  const line = readFileSync(`/proc/${pid}/maps`, "utf8")
    .split("\n")
    .find((l) => /\/libc[.-][^/]*\.so/.test(l) || l.endsWith("/libc.so.6"))!;
  return line.slice(line.indexOf("/"));
}

function isErr(errno: string, re?: RegExp) {
  return (e: unknown) => e instanceof XspliceError && e.errno === errno && (!re || re.test(e.message));
}

describe("remote system calls and function calls", () => {
  let t: Target;
  before(async () => {
    t = await startTarget(exe, ["4", "spin"]);
  });
  after(() => t.kill());

  it("runs getpid/gettid, leaving registers and every byte of the program's code as they were", () => {
    // The first injection creates the inject page through the bootstrap stub, whose code goes into
    // unused bytes after an object's code for the duration: afterwards every executable mapping of
    // the program holds exactly what it held before.
    const code = () =>
      readMaps(t.pid)
        .filter((m) => m.perms.exec && !m.path.startsWith("/memfd:xsplice-inject") && m.path !== "[vsyscall]")
        .map((m) => ({
          at: m.start,
          bytes: Buffer.from(readMemory(t.pid, m.start, Number(m.end - m.start))),
        }));
    const before = code();
    withStoppedProcess(t.pid, {}, (tr) => {
      for (const tid of tr.threads) {
        const regsBefore = tr.regs(tid);
        assert.equal(remoteSyscall(tr, tid, SYS.getpid, []), BigInt(t.pid));
        assert.equal(remoteSyscall(tr, tid, SYS.gettid, []), BigInt(tid));
        assert.deepEqual(tr.regs(tid), regsBefore);
      }
    });
    const after = code();
    assert.equal(after.length, before.length);
    for (const [i, m] of before.entries())
      assert.ok(after[i]!.bytes.equals(m.bytes), `code at 0x${m.at.toString(16)} changed`);
  });

  it("maps RW memory near the executable, makes it RX, unmaps it", () => {
    withStoppedProcess(t.pid, {}, (tr) => {
      const tid = tr.threads[0]!;
      const main = symbolAddress(t.pid, exe, "main");
      const hint = (main - (64n << 20n)) & ~0xfffn;
      const page = remoteMmap(tr, tid, { addr: hint, length: 4096, prot: PROT.READ | PROT.WRITE });
      const distance = page > main ? page - main : main - page;
      assert.ok(distance < 1n << 31n, `mapped at ${page.toString(16)}, ${distance} bytes from main`);
      assert.match(mapLine(t.pid, page)!, / rw-p /);
      const code = Uint8Array.of(0x48, 0x8d, 0x04, 0x37, 0xc3); // lea rax,[rdi+rsi]; ret
      writeMemory(t.pid, page, code);
      remoteMprotect(tr, tid, page, 4096, PROT.READ | PROT.EXEC);
      assert.match(mapLine(t.pid, page)!, / r-xp /);
      // the new code runs in the target
      assert.equal(remoteCall(tr, tid, page, [40n, 2n]), 42n);
      assert.deepEqual(readMemory(t.pid, page, code.length), code);
      remoteMunmap(tr, tid, page, 4096);
      assert.equal(mapLine(t.pid, page), undefined);
    });
  });

  it("creates a memfd and maps it shared", () => {
    withStoppedProcess(t.pid, {}, (tr) => {
      const tid = tr.threads[0]!;
      const fd = remoteMemfdCreate(tr, tid, "xsplice-test");
      assert.match(readlinkSync(`/proc/${t.pid}/fd/${fd}`), /^\/memfd:xsplice-test/);
      assert.equal(remoteSyscall(tr, tid, 77 /* ftruncate */, [BigInt(fd), 4096n]), 0n);
      const at = remoteMmap(tr, tid, { length: 4096, prot: PROT.READ, flags: MAP.SHARED, fd });
      assert.match(mapLine(t.pid, at)!, /memfd:xsplice-test/);
      remoteMunmap(tr, tid, at, 4096);
      assert.equal(remoteSyscall(tr, tid, 3 /* close */, [BigInt(fd)]), 0n);
    });
  });

  it("a failing system call is an XspliceError with the errno name", () => {
    withStoppedProcess(t.pid, {}, (tr) => {
      const tid = tr.threads[0]!;
      assert.throws(() => remoteMunmap(tr, tid, 0x1001n, 4096), isErr("EINVAL", /munmap\(0x1001/));
      assert.throws(() => remoteMmap(tr, tid, { length: 0, prot: PROT.READ }), isErr("EINVAL"));
    });
  });

  it("calls a fixture function with six arguments and libc's getpid by address", () => {
    const args6 = symbolAddress(t.pid, exe, "xs_args6");
    const getpid = symbolAddress(t.pid, libcPath(t.pid), "getpid");
    withStoppedProcess(t.pid, {}, (tr) => {
      for (const tid of tr.threads) {
        const before = tr.regs(tid);
        assert.equal(remoteCall(tr, tid, args6, [1n, 2n, 3n, 4n, 5n, 6n]), 91n);
        assert.equal(remoteCall(tr, tid, args6, [-1n, 0n, 0n, 0n, 0n, 1n]), 5n);
        assert.equal(remoteCall(tr, tid, getpid, []), BigInt(t.pid));
        assert.deepEqual(tr.regs(tid), before, `registers of ${tid} restored`);
      }
    });
  });

  it("calls on busy workers restore registers and FPU state: the workers never compute a wrong result", async () => {
    const fl = symbolAddress(t.pid, exe, "xs_float");
    const before = await status(t);
    let expected: bigint | undefined;
    withStoppedProcess(t.pid, {}, (tr) => {
      for (let i = 0; i < 40; i++) {
        for (const tid of tr.threads.slice(1, 5)) {
          const r = remoteCall(tr, tid, fl, [1000n]);
          expected ??= r;
          assert.equal(r, expected);
        }
        tr.resume();
        tr.quiesce();
      }
    });
    assert.equal(expected, 7485n); // H(1000) = 7.4854...
    const afterCalls = await status(t);
    assert.equal(afterCalls.errors, 0);
    assert.ok(afterCalls.progress > before.progress);
  });

  it("a crashing call is EFAULT naming the signal and pc; the process survives", async () => {
    const crash = symbolAddress(t.pid, exe, "xs_crash");
    withStoppedProcess(t.pid, {}, (tr: Tracee) => {
      const tid = tr.threads[1]!;
      const before = tr.regs(tid);
      assert.throws(
        () => remoteCall(tr, tid, crash, [0n]),
        (e: unknown) =>
          isErr("EFAULT", /SIGSEGV at pc 0x/)(e) &&
          (e as XspliceError).where.address! >= crash &&
          (e as XspliceError).where.address! < crash + 64n,
      );
      assert.deepEqual(tr.regs(tid), before);
    });
    const s = await status(t);
    assert.equal(s.errors, 0);
    assert.ok(t.lines.every((l) => !l.startsWith("ERROR")));
  });

  it("a call that does not return is ETIMEDOUT, with the thread back where it was", async () => {
    const spin = symbolAddress(t.pid, exe, "xs_spin");
    const before = await status(t);
    withStoppedProcess(t.pid, {}, (tr) => {
      const tid = tr.threads[2]!;
      const regs = tr.regs(tid);
      assert.throws(() => remoteCall(tr, tid, spin, [], { timeoutMs: 50 }), isErr("ETIMEDOUT"));
      assert.deepEqual(tr.regs(tid), regs);
    });
    // The workers go on: their counter moves past what it was before the call.
    const s = await waitUntil("the workers to progress after the timed-out call", async () => {
      const now = await status(t);
      return now.progress > before.progress && now;
    });
    assert.equal(s.errors, 0);
  });

  it("threads blocked in read and nanosleep carry on after calls and system calls into them", async () => {
    const args6 = symbolAddress(t.pid, exe, "xs_args6");
    const from = t.lines.length;
    const known = threadIds(t.pid);
    // Long enough that the sleeper is still asleep when the process is stopped right after it was seen asleep.
    t.send("sleep 2000");
    const sleeper = await waitNewSleeper(t.pid, known);
    withStoppedProcess(t.pid, {}, (tr) => {
      assert.match(readFileSync(`/proc/${t.pid}/task/${sleeper}/syscall`, "utf8"), /^(230|35) /); // clock_nanosleep
      for (const tid of [t.pid, sleeper]) {
        const regs = tr.regs(tid);
        assert.ok(regs.orig_rax !== (1n << 64n) - 1n, "stopped inside a system call");
        assert.equal(remoteCall(tr, tid, args6, [1n, 1n, 1n, 1n, 1n, 1n]), 21n);
        assert.equal(remoteSyscall(tr, tid, SYS.gettid, []), BigInt(tid));
        assert.deepEqual(tr.regs(tid), regs);
      }
    });
    const slept = Number(/^slept (\d+)/.exec(await t.waitFor(/^slept /, { from }))![1]);
    // Not cut short (an EINTR prints ERROR); how much longer it took is the machine's load, not a result.
    assert.ok(slept >= 2000, `nanosleep(2000) took ${slept} ms`);
    assert.equal((await status(t)).errors, 0); // the main thread's read still works
    assert.equal(realpathSync(`/proc/${t.pid}/exe`), realpathSync(exe));
  });
});
