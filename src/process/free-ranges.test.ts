import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { test } from "node:test";
import { waitAsleep } from "../../test/helpers/wait.ts";
import { XspliceError } from "../errors.ts";
import { type AddressRange, findFreeRange, mmapMinAddr, REL32_REACH, USER_ADDR_END } from "./free-ranges.ts";
import { type Mapping, readMaps } from "./maps.ts";

const GiB = 1n << 30n;
const MiB = 1n << 20n;

function map(start: bigint, end: bigint, path = ""): Mapping {
  return {
    start,
    end,
    perms: { read: true, write: false, exec: false, shared: false },
    offset: 0n,
    dev: "00:00",
    inode: 0n,
    path,
    deleted: false,
  };
}

/** The invariants every answer must hold: aligned, free with the guard, every byte within reach of every object byte. */
function checkRange(
  r: AddressRange,
  maps: Mapping[],
  obj: AddressRange,
  size: bigint,
  o: { reach?: bigint; guard?: bigint; align?: bigint; minAddr?: bigint } = {},
) {
  const reach = o.reach ?? REL32_REACH;
  const guard = o.guard ?? 0x10000n;
  assert.equal(r.start % (o.align ?? 4096n), 0n, "aligned");
  assert.ok(r.end - r.start >= size, "large enough");
  assert.ok(r.start >= (o.minAddr ?? 0x10000n) && r.end <= USER_ADDR_END, "inside user space");
  for (const m of maps)
    assert.ok(r.end + guard <= m.start || m.end + guard <= r.start, `clear of ${m.start.toString(16)}`);
  // rel32 both ways between the extreme bytes: displacement in [-reach, reach).
  assert.ok(r.end - 1n - obj.start < reach && obj.end - 1n - r.start < reach, "within reach");
  assert.ok(r.start - (obj.end - 1n) >= -reach && obj.start - (r.end - 1n) >= -reach, "within reach below");
}

test("findFreeRange picks the free range closest to a PIE, clear of the guard", () => {
  const obj = { start: 0x555555554000n, end: 0x555555559000n };
  const maps = [
    map(0x555555554000n, 0x555555559000n, "/usr/bin/x"),
    map(0x55555555a000n, 0x55555557b000n, "[heap]"),
    map(0x7ffff7dd0000n, 0x7ffff7ff0000n, "/usr/lib/libc.so.6"),
    map(0x7ffffffde000n, 0x7ffffffff000n, "[stack]"),
  ];
  const r = findFreeRange(maps, obj, 0x2800);
  checkRange(r, maps, obj, 0x2800n);
  // The gap between the object and the heap is too small with a 64 KiB guard; right below the object wins.
  assert.deepEqual(r, { start: obj.start - 0x10000n - 0x3000n, end: obj.start - 0x10000n });
});

test("findFreeRange goes above when below is full, and keeps the heap's growth room", () => {
  const obj = { start: 0x555555554000n, end: 0x555555559000n };
  const maps = [
    map(0x10000n, 0x555555554000n), // everything below is taken
    map(0x555555554000n, 0x555555559000n, "/usr/bin/x"),
    map(0x555555600000n, 0x555555700000n, "[heap]"),
  ];
  const r = findFreeRange(maps, obj, 4096);
  checkRange(r, maps, obj, 4096n);
  assert.deepEqual(r, { start: 0x555555559000n + 0x10000n, end: 0x555555559000n + 0x11000n });
  // A range that does not fit below the heap goes after the heap plus its 64 MiB reserve.
  const big = findFreeRange(maps, obj, 0x100000);
  checkRange(big, maps, obj, 0x100000n);
  assert.equal(big.start, 0x555555700000n + 64n * MiB + 0x10000n);
  // With the reserve off it sits right after the heap's guard.
  const tight = findFreeRange(maps, obj, 0x100000, { heapReserve: 0n });
  assert.equal(tight.start, 0x555555700000n + 0x10000n);
});

test("findFreeRange keeps every byte within reach of the whole object, not just its start", () => {
  const obj = { start: 0x100000000n, end: 0x100000000n + GiB + GiB / 2n }; // 1.5 GiB object
  const maps = [map(obj.start, obj.end, "/big"), map(obj.end + 0x10000n, obj.start + 2n * GiB + 0x100000n)];
  // Above: the free space starts beyond start + 2 GiB; below: must start at or above end − 2 GiB.
  const r = findFreeRange(maps, obj, 64n * MiB);
  checkRange(r, maps, obj, 64n * MiB);
  assert.ok(r.end <= obj.start - 0x10000n && r.start >= obj.end - REL32_REACH);
  assert.throws(
    () => findFreeRange(maps, obj, GiB),
    (e: unknown) => e instanceof XspliceError && e.errno === "ENOMEM" && /0x40000000 bytes/.test(e.message),
  );
});

test("findFreeRange respects mmap_min_addr, the 47-bit limit, the stack reserve and alignment", () => {
  const low = { start: 0x400000n, end: 0x401000n };
  const lowMaps = [map(0x400000n, 0x401000n, "/nopie"), map(0x411000n, 0x400000n + REL32_REACH)];
  const r = findFreeRange(lowMaps, low, 0x3f0000 - 0x10000, { minAddr: 0x10000n });
  checkRange(r, lowMaps, low, 0x3e0000n);
  assert.equal(r.start, 0x10000n);
  assert.throws(() => findFreeRange(lowMaps, low, 0x3f0000, { minAddr: 0x10000n }), XspliceError);

  const top = { start: USER_ADDR_END - 0x100000n, end: USER_ADDR_END - 0x80000n };
  const topMaps = [map(0x10000n, top.start - 0x20000n), map(top.start, top.end, "[stack]")];
  const t = findFreeRange(topMaps, top, 0x40000);
  checkRange(t, topMaps, top, 0x40000n);
  assert.ok(t.start >= top.end && t.end <= USER_ADDR_END, "above the object, below TASK_SIZE");

  const stackObj = { start: 0x7ffff7000000n, end: 0x7ffff7100000n };
  const stackMaps = [
    map(0x10000n, 0x7fff00000000n),
    map(0x7ffff7000000n, 0x7ffff7100000n, "/lib"),
    map(0x7ffffff00000n, 0x7ffffff21000n, "[stack]"),
  ];
  const s = findFreeRange(stackMaps, stackObj, 0x1000, { align: 2n * MiB });
  checkRange(s, stackMaps, stackObj, 0x1000n, { align: 2n * MiB });
  assert.ok(s.end <= 0x7ffffff00000n - 8n * MiB, "8 MiB below [stack] stay free");
  assert.throws(() => findFreeRange(stackMaps, stackObj, 0x1000, { align: 3000n }), XspliceError);
  assert.throws(() => findFreeRange(stackMaps, stackObj, 0), XspliceError);
});

test("findFreeRange returns the closest fit: brute force over random small maps", () => {
  const page = 4096n;
  let seed = 12345;
  const rnd = (n: number) => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed % n;
  };
  for (let round = 0; round < 200; round++) {
    // A 256-page universe starting at page 16; reach 64 pages; guard 1 page.
    const maps: Mapping[] = [];
    let p = 16 + rnd(8);
    while (p < 256) {
      const len = 1 + rnd(6);
      maps.push(map(BigInt(p) * page, BigInt(p + len) * page));
      p += len + rnd(10);
    }
    const objIdx = rnd(maps.length);
    const obj = { start: maps[objIdx]!.start, end: maps[objIdx]!.end };
    const size = BigInt(1 + rnd(3)) * page;
    const o = { reach: 64n * page, guard: page, minAddr: 16n * page, maxAddr: 256n * page };
    const isOk = (start: bigint) => {
      const end = start + size;
      if (start < o.minAddr || end > o.maxAddr) return false;
      if (start < obj.end - o.reach || end > obj.start + o.reach) return false;
      return maps.every((m) => end + o.guard <= m.start || m.end + o.guard <= start);
    };
    const dist = (start: bigint) =>
      start + size <= obj.start ? obj.start - start - size : start >= obj.end ? start - obj.end : 0n;
    let best: bigint | undefined;
    for (let s = 0n; s < 256n * page; s += page)
      if (isOk(s) && (best === undefined || dist(s) < best)) best = dist(s);
    if (best === undefined) {
      assert.throws(() => findFreeRange(maps, obj, size, o), XspliceError, `round ${round}`);
    } else {
      const r = findFreeRange(maps, obj, size, o);
      assert.ok(isOk(r.start), `round ${round}: result is free and in reach`);
      assert.equal(dist(r.start), best, `round ${round}: closest`);
    }
  }
});

test("findFreeRange near a real executable gives a range no mapping of the process overlaps", async () => {
  const child = spawn("/usr/bin/sleep", ["30"], { stdio: "ignore" });
  try {
    // Past exec and the dynamic loader: asleep, the process maps nothing on its own.
    await waitAsleep(child.pid!);
    const maps = readMaps(child.pid!);
    const exe = maps.filter((m) => m.path === "/usr/bin/sleep");
    const obj = { start: exe[0]!.start, end: exe[exe.length - 1]!.end };
    const minAddr = mmapMinAddr();
    const r = findFreeRange(maps, obj, 3 * 4096 + 100, { minAddr });
    checkRange(r, maps, obj, 4n * 4096n, { minAddr });
    // Read the maps again: still nothing there (the process does not map on its own while sleeping).
    for (const m of readMaps(child.pid!)) assert.ok(r.end <= m.start || m.end <= r.start);
  } finally {
    child.kill("SIGKILL");
  }
});
