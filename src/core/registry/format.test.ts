import assert from "node:assert/strict";
import { test } from "node:test";
import { XspliceError } from "../../errors.ts";
import {
  commitRegistry,
  initRegistry,
  isUninitialised,
  MAX_SLOT_SIZE,
  type RegistryMemory,
  readRegistry,
  registrySize,
} from "./format.ts";
import { emptyRegistry, type RegistryState } from "./records.ts";

const BASE = 0x7f0000000000n;
const SLOT = 64 * 1024;

/** A flat buffer standing in for the target's memory; records every write. */
function bufferMemory(
  size: number,
): RegistryMemory & { bytes: Uint8Array; writes: { addr: bigint; len: number }[] } {
  const bytes = new Uint8Array(size);
  const writes: { addr: bigint; len: number }[] = [];
  return {
    bytes,
    writes,
    read: (addr, len) => bytes.slice(Number(addr - BASE), Number(addr - BASE) + len),
    write: (addr, data) => {
      writes.push({ addr, len: data.length });
      bytes.set(data, Number(addr - BASE));
    },
  };
}

function stateWith(n: number): RegistryState {
  const s = emptyRegistry();
  s.version = n;
  return s;
}

test("init then read returns the state", () => {
  const mem = bufferMemory(registrySize(SLOT));
  initRegistry(mem, BASE, stateWith(7), SLOT);
  const snap = readRegistry(mem, BASE);
  assert.equal(snap.state.version, 7);
  assert.equal(snap.generation, 1n);
});

test("the magic is written last, so half-initialised memory is not a registry", () => {
  const mem = bufferMemory(registrySize(SLOT));
  assert.equal(isUninitialised(mem, BASE), true, "freshly mapped zero memory");
  initRegistry(mem, BASE, stateWith(1), SLOT);
  assert.equal(mem.writes.at(-1)?.addr, BASE);
  assert.equal(isUninitialised(mem, BASE), false);
  mem.bytes.fill(0, 0, 8);
  assert.equal(isUninitialised(mem, BASE), true, "everything but the magic written");
  assert.throws(
    () => readRegistry(mem, BASE),
    (e: unknown) => e instanceof XspliceError && e.errno === "EINVAL",
  );
});

test("commits alternate slots and bump the generation; the last write is the 4-byte flip", () => {
  const mem = bufferMemory(registrySize(SLOT));
  initRegistry(mem, BASE, stateWith(1), SLOT);
  for (let i = 2; i < 6; i++) {
    mem.writes.length = 0;
    const gen = commitRegistry(mem, BASE, stateWith(i));
    assert.equal(gen, BigInt(i));
    assert.deepEqual(mem.writes.at(-1), { addr: BASE + 12n, len: 4 });
    assert.equal(readRegistry(mem, BASE).state.version, i);
  }
});

test("a commit interrupted before the flip leaves the previous state readable", () => {
  const mem = bufferMemory(registrySize(SLOT));
  initRegistry(mem, BASE, stateWith(1), SLOT);
  const dying: RegistryMemory = {
    read: mem.read,
    write: (addr, data) => {
      if (addr === BASE + 12n) throw new Error("killed");
      mem.write(addr, data);
    },
  };
  assert.throws(() => commitRegistry(dying, BASE, stateWith(2)));
  assert.equal(readRegistry(mem, BASE).state.version, 1);
});

test("a corrupted active slot is reported as EIO, not returned", () => {
  const mem = bufferMemory(registrySize(SLOT));
  initRegistry(mem, BASE, stateWith(3), SLOT);
  mem.bytes[4096 + 2] = (mem.bytes[4096 + 2] ?? 0) ^ 0xff;
  assert.throws(
    () => readRegistry(mem, BASE),
    (e: unknown) => e instanceof XspliceError && e.errno === "EIO",
  );
});

test("a state larger than the slot is ENOSPC and leaves the registry unchanged", () => {
  const mem = bufferMemory(registrySize(256));
  initRegistry(mem, BASE, stateWith(1), 256);
  const big = stateWith(2);
  big.payloads = Array.from({ length: 20 }, () => ({ name: "x".repeat(20) }) as never);
  assert.throws(
    () => commitRegistry(mem, BASE, big),
    (e: unknown) => e instanceof XspliceError && e.errno === "ENOSPC",
  );
  assert.equal(readRegistry(mem, BASE).state.version, 1);
});

test("a slot size or length from the header above the cap is EINVAL before anything is allocated", () => {
  for (const [slotSize, length] of [
    [1n << 30n, 100n],
    [BigInt(SLOT), 1n << 30n],
  ] as const) {
    const mem = bufferMemory(registrySize(SLOT));
    initRegistry(mem, BASE, stateWith(1), SLOT);
    const dv = new DataView(mem.bytes.buffer);
    dv.setBigUint64(16, slotSize, true);
    dv.setBigUint64(32, length, true);
    const reads: number[] = [];
    const counting: RegistryMemory = {
      ...mem,
      read: (a, n) => {
        reads.push(n);
        return mem.read(a, n);
      },
    };
    assert.throws(
      () => readRegistry(counting, BASE),
      (e: unknown) => e instanceof XspliceError && e.errno === "EINVAL" && /1073741824/.test(e.message),
    );
    assert.ok(Math.max(...reads) <= MAX_SLOT_SIZE, `read ${Math.max(...reads)} bytes`);
  }
});

test("slots that do not fit the mapping are EINVAL", () => {
  const mem = bufferMemory(registrySize(SLOT));
  initRegistry(mem, BASE, stateWith(1), SLOT);
  assert.throws(
    () => readRegistry(mem, BASE, BigInt(registrySize(SLOT) - 4096)),
    (e: unknown) => e instanceof XspliceError && e.errno === "EINVAL" && /do not fit/.test(e.message),
  );
  assert.equal(readRegistry(mem, BASE, BigInt(registrySize(SLOT))).state.version, 1);
});
