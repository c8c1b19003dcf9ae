import assert from "node:assert/strict";
import { test } from "node:test";
import { XspliceError } from "../../errors.ts";
import type { Mapping } from "../../process/maps.ts";
import { findRegistryMapping, MEMFD_REGISTRY_PATH } from "./remote.ts";

function memfd(start: bigint, end: bigint, inode: bigint, offset = 0n): Mapping {
  const perms = { read: true, write: false, exec: false, shared: false };
  return { start, end, perms, offset, dev: "00:01", inode, path: MEMFD_REGISTRY_PATH, deleted: true };
}

test("one registry split into lines is one; two memfds side by side are two (EINVAL)", () => {
  const one = [memfd(0x1000n, 0x3000n, 7n), memfd(0x3000n, 0x5000n, 7n, 0x2000n)];
  assert.deepEqual(findRegistryMapping(1, one), { base: 0x1000n, size: 0x4000n });
  const two = [memfd(0x1000n, 0x3000n, 7n), memfd(0x3000n, 0x5000n, 8n)];
  assert.throws(
    () => findRegistryMapping(1, two),
    (e: unknown) => e instanceof XspliceError && e.errno === "EINVAL" && /2 registries/.test(e.message),
  );
});
