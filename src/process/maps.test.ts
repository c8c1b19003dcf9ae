import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { copyFileSync, mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { waitAsleep } from "../../test/helpers/wait.ts";
import { XspliceError } from "../errors.ts";
import { isFileMapping, mappingAt, parseMaps, readMaps } from "./maps.ts";

const SAMPLE = [
  "5581a5e00000-5581a5e02000 r--p 00000000 fe:00 1048602                    /usr/bin/cat",
  "5581a5e02000-5581a5e07000 r-xp 00002000 fe:00 1048602                    /usr/bin/cat",
  "5581a6a1d000-5581a6a3e000 rw-p 00000000 00:00 0                          [heap]",
  "7f0000000000-7f0000001000 rw-s 00000000 00:01 4242                       /dev/shm/with space (deleted)",
  "7f0000001000-7f0000002000 r--p 00000000 00:00 0                          [anon:xsplice registry]",
  "7f0000002000-7f0000003000 ---p 00000000 00:00 0 ",
  "7f0000003000-7f0000004000 rw-p 00000000 00:00 0",
  "7ffd6e1f1000-7ffd6e1f3000 r-xp 00000000 00:00 0                          [vdso]",
  "ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0                  [vsyscall]",
  "",
].join("\n");

test("parseMaps reads every column, pseudo names, named anonymous memory and deleted files", () => {
  const maps = parseMaps(SAMPLE);
  assert.equal(maps.length, 9);
  const text = maps[1]!;
  assert.equal(text.start, 0x5581a5e02000n);
  assert.equal(text.end, 0x5581a5e07000n);
  assert.deepEqual(text.perms, { read: true, write: false, exec: true, shared: false });
  assert.equal(text.offset, 0x2000n);
  assert.equal(text.dev, "fe:00");
  assert.equal(text.inode, 1048602n);
  assert.equal(text.path, "/usr/bin/cat");
  assert.ok(isFileMapping(text));
  assert.equal(maps[2]!.path, "[heap]");
  assert.ok(!isFileMapping(maps[2]!));
  assert.deepEqual(
    { path: maps[3]!.path, deleted: maps[3]!.deleted, shared: maps[3]!.perms.shared },
    { path: "/dev/shm/with space", deleted: true, shared: true },
  );
  assert.equal(maps[4]!.path, "[anon:xsplice registry]");
  assert.equal(maps[5]!.path, "");
  assert.equal(maps[6]!.path, "");
  assert.equal(maps[7]!.path, "[vdso]");
  assert.equal(maps[8]!.start, 0xffffffffff600000n);
});

test("parseMaps rejects a line not in the kernel's format with EINVAL naming the line", () => {
  assert.throws(
    () => parseMaps("00400000-00401000 r-xp 00000000 fe:00 1 /a\nnot a mapping\n"),
    (e: unknown) => e instanceof XspliceError && e.errno === "EINVAL" && /line 2/.test(e.message),
  );
});

test("mappingAt finds the mapping containing an address and nothing in gaps", () => {
  const maps = parseMaps(SAMPLE);
  assert.equal(mappingAt(maps, 0x5581a5e02000n)?.path, "/usr/bin/cat");
  assert.equal(mappingAt(maps, 0x5581a5e06fffn)?.offset, 0x2000n);
  assert.equal(mappingAt(maps, 0x5581a5e07000n), undefined);
  assert.equal(mappingAt(maps, 0x7ffd6e1f2000n)?.path, "[vdso]");
  assert.equal(mappingAt(maps, 0n), undefined);
});

test("readMaps of a real process matches its /proc/PID/maps line by line, and sees a deleted executable", async () => {
  const dir = mkdtempSync(join(tmpdir(), "xsplice-maps-"));
  const exe = join(dir, "sleep copy");
  copyFileSync("/usr/bin/sleep", exe);
  const child = spawn(exe, ["30"], { stdio: "ignore" });
  try {
    const pid = child.pid!;
    await waitAsleep(pid); // past exec and the dynamic loader: its maps no longer change
    const raw = readFileSync(`/proc/${pid}/maps`, "utf8").trim().split("\n");
    let maps = readMaps(pid);
    assert.equal(maps.length, raw.length);
    const own = maps.filter((m) => m.path === exe);
    assert.ok(own.length >= 2, "the executable's segments are listed under its path with the space kept");
    assert.equal(own[0]!.inode, BigInt(statSync(exe).ino));
    assert.ok(own.every((m) => !m.deleted));
    assert.ok(maps.some((m) => m.path === "[stack]") && maps.some((m) => m.path === "[vdso]"));
    rmSync(exe);
    maps = readMaps(pid);
    const gone = maps.filter((m) => m.path === exe);
    assert.equal(gone.length, own.length);
    assert.ok(gone.every((m) => m.deleted));
  } finally {
    child.kill("SIGKILL");
    rmSync(dir, { recursive: true, force: true });
  }
});

test("readMaps of a process that does not exist is ESRCH", async () => {
  const child = spawn("/bin/true", [], { stdio: "ignore" });
  await new Promise((r) => child.on("exit", r));
  assert.throws(
    () => readMaps(child.pid!),
    (e: unknown) => e instanceof XspliceError && e.errno === "ESRCH" && e.where.pid === child.pid,
  );
  assert.throws(
    () => readMaps(-1),
    (e: unknown) => e instanceof XspliceError && e.errno === "ESRCH",
  );
});
