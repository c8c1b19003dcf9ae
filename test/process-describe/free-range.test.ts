import assert from "node:assert/strict";
import { test } from "node:test";
import { findFreeRange, mmapMinAddr, REL32_REACH } from "../../src/process/free-ranges.ts";
import { mappingAt, readMaps } from "../../src/process/maps.ts";
import { mappedObjects } from "../../src/process/objects.ts";
import { MAP, PROT, remoteMmap, remoteMunmap } from "../../src/process/syscalls.ts";
import { Tracee } from "../../src/process/threads.ts";
import { buildDescribe, startDescribe } from "./_fixture.ts";

test("a free range near the executable and near libc is really free: MAP_FIXED_NOREPLACE maps it there", async () => {
  const run = await startDescribe(buildDescribe("O2").exe);
  let tracee: Tracee | undefined;
  try {
    tracee = Tracee.seize(run.pid, { timeoutMs: 2000 });
    const maps = readMaps(run.pid);
    const objects = mappedObjects(run.pid, { maps });
    for (const obj of [objects[0]!, objects.find((o) => o.path.endsWith("/libc.so.6"))!]) {
      const size = 5 * 4096 + 123;
      const r = findFreeRange(maps, { start: obj.start, end: obj.end }, size, { minAddr: mmapMinAddr() });
      // Every byte reaches every byte of the object with a rel32, both ways.
      assert.ok(r.end - 1n - obj.start < REL32_REACH && obj.end - 1n - r.start < REL32_REACH, obj.path);
      assert.ok(obj.start - (r.end - 1n) <= REL32_REACH && r.start - (obj.end - 1n) <= REL32_REACH, obj.path);
      const at = remoteMmap(tracee, run.pid, {
        addr: r.start,
        length: r.end - r.start,
        prot: PROT.READ | PROT.WRITE,
        flags: MAP.PRIVATE | MAP.ANONYMOUS | MAP.FIXED_NOREPLACE,
      });
      assert.equal(at, r.start, `${obj.path}: mapped where asked`);
      const after = readMaps(run.pid);
      const m = mappingAt(after, r.start);
      assert.ok(m && m.end >= r.end && m.path === "", "the new anonymous mapping is there");
      remoteMunmap(tracee, run.pid, r.start, r.end - r.start);
      assert.equal(mappingAt(readMaps(run.pid), r.start), undefined, "and gone after munmap");
    }
  } finally {
    tracee?.detach();
    await run.kill();
  }
});
