/**
 * Issue #11 items 7 and 10: what a target maps is read only through
 * `/proc/PID/map_files/`, only when it is a regular file, and only up to
 * `MAX_OBJECT_FILE_SIZE`. A real process maps a 2.5 GiB sparse file that
 * starts with the ELF magic: that was read whole before (above 2 GiB a raw
 * Node RangeError, and the process could not be patched at all).
 */
import assert from "node:assert/strict";
import { closeSync, openSync, writeSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { createContext } from "../../../src/core/context.ts";
import { MAX_OBJECT_FILE_SIZE, mappedObjects } from "../../../src/process/objects.ts";
import { tempDir } from "../../cli/_run.ts";
import { compileC } from "../../helpers/cc.ts";
import { startTarget, type Target } from "../../helpers/target.ts";

const FORGER = compileC({ sources: ["hardening/forge-registry.c"], kind: "exe" });
const HUGE = 5n << 29n; // 2.5 GiB, sparse: costs no disk

describe("mapped objects of an untrusted target", () => {
  let tmp: { dir: string; remove: () => void };
  let big: string;
  let t: Target;
  before(async () => {
    tmp = tempDir("objects");
    big = join(tmp.dir, "huge.so");
    const fd = openSync(big, "w");
    writeSync(fd, Buffer.from("\x7fELF\x02\x01\x01", "latin1"));
    closeSync(fd);
    t = await startTarget(FORGER, ["file", big, String(HUGE)]);
  });
  after(async () => {
    await t?.kill();
    tmp?.remove();
  });

  it("a mapped ELF above the cap is refused by name, and every other object is still described", () => {
    const refused: string[] = [];
    const objects = mappedObjects(t.pid, { refused });
    assert.ok(objects.some((o) => o.kind === "executable" && o.path === FORGER));
    assert.ok(objects.some((o) => o.path.endsWith("/libc.so.6")));
    assert.ok(!objects.some((o) => o.path === big));
    assert.deepEqual(refused, [
      `${JSON.stringify(big)} is ${HUGE} bytes, above the ${MAX_OBJECT_FILE_SIZE}-byte limit for objects`,
    ]);
  });

  it("parsed files are kept only in the context passed, bounded", () => {
    const libc = (c?: ReturnType<typeof createContext>) =>
      mappedObjects(t.pid, c ? { cache: c.objectFiles } : {}).find((o) => o.path.endsWith("/libc.so.6"))!.elf;
    const context = createContext();
    const [kept, keptAgain] = [libc(context), libc(context)];
    assert.ok(kept === keptAgain, "kept in the context");
    const [fresh, freshAgain] = [libc(), libc()];
    assert.ok(fresh !== freshAgain, "no context: nothing kept");
    const small = createContext({ objectFiles: 2 });
    mappedObjects(t.pid, { cache: small.objectFiles });
    assert.equal(small.objectFiles.size, 2, "the bound holds with three objects mapped");
  });
});
