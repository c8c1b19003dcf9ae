import assert from "node:assert/strict";
import { closeSync, openSync, readSync } from "node:fs";
import { test } from "node:test";
import { readMaps } from "../../src/process/maps.ts";
import { readMemory } from "../../src/process/memory.ts";
import { type MappedObject, mappedObjects, objectAt } from "../../src/process/objects.ts";
import { addressesToCheck, hitsRange, type StackRegisters, stackFacts } from "../../src/process/stack.ts";
import { Tracee } from "../../src/process/threads.ts";
import { tool } from "../helpers/cc.ts";
import { buildDescribe, startDescribe } from "./_fixture.ts";

/** gdb as the oracle: the thread's registers and its backtrace (frame pcs #1.. are return addresses). */
function gdbView(pid: number): { regs: StackRegisters; frames: bigint[] } {
  const out = tool("gdb", ["-nx", "-batch", "-p", String(pid), "-ex", "info registers", "-ex", "bt"]);
  const regs: Record<string, bigint> = {};
  for (const m of out.matchAll(/^(r[a-z0-9]+)\s+(0x[0-9a-f]+)/gm)) regs[m[1]!] = BigInt(m[2]!);
  const frames = [...out.matchAll(/^#([1-9]\d*)\s+(0x[0-9a-f]+) in /gm)].map((m) => BigInt(m[2]!));
  assert.ok(regs.rip && regs.rsp && regs.rbp !== undefined, "gdb printed the registers");
  return { regs: regs as unknown as StackRegisters, frames };
}

function memReader(pid: number) {
  return (addr: bigint, len: number) => {
    const buf = new Uint8Array(len);
    const fd = openSync(`/proc/${pid}/mem`, "r");
    try {
      const n = readSync(fd, buf, 0, len, addr);
      return buf.subarray(0, n);
    } finally {
      closeSync(fd);
    }
  };
}

/** Name the caller of each return address by ra − 1: gcc ends a function with a call to a noreturn one (chain_c never returns). */
function names(objects: MappedObject[], addrs: bigint[]): string[] {
  return addrs.map((a) => objectAt(objects, a - 1n)?.symbolAt(a - 1n)?.symbol.name ?? `?0x${a.toString(16)}`);
}

for (const variant of ["O2", "fp"] as const) {
  test(`stack facts of a thread asleep in a → b → c → nanosleep (-O2${variant === "fp" ? " -fno-omit-frame-pointer" : ""})`, async () => {
    const run = await startDescribe(buildDescribe(variant).exe);
    try {
      const gdb = gdbView(run.pid);
      const maps = readMaps(run.pid);
      const objects = mappedObjects(run.pid, { maps });
      const read = memReader(run.pid);
      const facts = stackFacts({ regs: gdb.regs, read, maps, objectAt: (pc) => objectAt(objects, pc) });

      assert.equal(facts.pc, gdb.regs.rip);
      assert.equal(facts.method, "eh_frame");
      assert.equal(facts.complete, true, facts.stopReason);
      // gdb stops its backtrace at main; the unwinder goes on to _start. gdb's frames are a prefix.
      assert.ok(gdb.frames.length >= 5, `gdb bt: ${gdb.frames.length} frames`);
      assert.deepEqual(facts.returnAddresses.slice(0, gdb.frames.length), gdb.frames);
      const named = names(objects, facts.returnAddresses);
      const c = named.indexOf("chain_c");
      assert.deepEqual(named.slice(c, c + 4), ["chain_c", "chain_b", "chain_a", "main"], named.join(" "));
      // The conservative scan is a superset of every real return address.
      for (const ra of facts.returnAddresses)
        assert.ok(facts.possibleReturnAddresses.includes(ra), `scan has 0x${ra.toString(16)}`);
      // The safety check's question: is a patched function on this stack?
      const exe = objects[0]!;
      for (const fn of ["chain_a", "chain_b", "chain_c", "main"]) {
        const s = exe.lookup(fn)!;
        assert.notEqual(hitsRange(facts, s.address, s.address + s.size, "unwound"), undefined, fn);
      }
      const lib = objects.find((o) => o.path.endsWith("libdescribe.so"))!.lookup("lib_fn")!;
      const idle = exe.lookup("only_main_static")!;
      for (const s of [lib, idle])
        assert.equal(hitsRange(facts, s.address, s.address + s.size, "unwound"), undefined, s.name);

      // Without CFI: frame pointers (fp build) or the scan (-O2); the check list still covers a, b and c.
      const bare = stackFacts({ regs: gdb.regs, read, maps });
      const check = new Set(addressesToCheck(bare, "unwound"));
      for (const ra of gdb.frames) assert.ok(check.has(ra), `0x${ra.toString(16)} is checked without CFI`);
      if (variant === "fp") {
        assert.equal(bare.method, "frame-pointer");
        const fpNamed = names(objects, bare.returnAddresses);
        assert.deepEqual(fpNamed.slice(0, 3), ["chain_b", "chain_a", "main"], fpNamed.join(" "));
        // CFI for libc only: the walk crosses libc by CFI, then takes the rbp chain through the executable.
        const mixed = stackFacts({
          regs: gdb.regs,
          read,
          maps,
          objectAt: (pc) => {
            const o = objectAt(objects, pc);
            return o?.kind === "executable" ? undefined : o;
          },
        });
        assert.equal(mixed.method, "frame-pointer");
        assert.deepEqual(mixed.returnAddresses.slice(0, gdb.frames.length), gdb.frames);
      }
    } finally {
      await run.kill();
    }
  });
}

test("stack facts of both threads seized with ptrace: registers from PTRACE_GETREGS, memory from /proc/PID/mem", async () => {
  const run = await startDescribe(buildDescribe("O2").exe);
  let tracee: Tracee | undefined;
  try {
    const maps = readMaps(run.pid);
    const objects = mappedObjects(run.pid, { maps });
    tracee = Tracee.seize(run.pid, { timeoutMs: 2000 });
    assert.deepEqual([...tracee.threads].sort(), [run.pid, run.worker].sort());
    for (const tid of tracee.threads) {
      const facts = stackFacts({
        regs: tracee.regs(tid),
        read: (addr, len) => readMemory(run.pid, addr, len),
        maps,
        objectAt: (pc) => objectAt(objects, pc),
      });
      assert.equal(facts.method, "eh_frame", `tid ${tid}: ${facts.stopReason}`);
      assert.equal(facts.complete, true);
      const named = names(objects, facts.returnAddresses);
      const c = named.indexOf("chain_c");
      const callers = tid === run.pid ? ["chain_b", "chain_a", "main"] : ["chain_b", "chain_a", "worker"];
      assert.deepEqual(named.slice(c + 1, c + 4), callers, `tid ${tid}: ${named.join(" ")}`);
      // The worker's stack is glibc's anonymous thread stack, not [stack].
      const stackMap = maps.find(
        (m) => facts.scanned && m.start <= facts.scanned.start && facts.scanned.end === m.end,
      );
      assert.equal(stackMap?.path, tid === run.pid ? "[stack]" : "");
    }
  } finally {
    tracee?.detach();
    await run.kill();
  }
});
