/**
 * Finding a library target's file from a payload's hints (`library-files.ts`):
 * which paths are tried, and that only a regular file with the target's
 * build-id is taken — real files compiled by gcc, a FIFO, a hard link.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { copyFileSync, linkSync, mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { after, test } from "node:test";
import { createBuildIdCache } from "../../src/agent/build-id.ts";
import { candidatePaths, findLibraryFiles } from "../../src/agent/library-files.ts";
import { readElf } from "../../src/elf/index.ts";
import { hexBytes } from "../../src/hex.ts";
import { tempDir } from "../cli/_run.ts";
import { compileC } from "../helpers/cc.ts";
import { libraryFixtures } from "./_library.ts";

const tmp = tempDir("libfiles");
after(() => tmp.remove());

test("candidate paths: the recorded file, then the soname in each directory; relative or slashed names are not tried", () => {
  assert.deepEqual(
    candidatePaths({ target: "x", file: "/opt/a/libz.so.1", soname: "libz.so.1" }, ["/lib", "/usr/lib"]),
    ["/opt/a/libz.so.1", "/lib/libz.so.1", "/usr/lib/libz.so.1"],
  );
  assert.deepEqual(candidatePaths({ target: "x", file: "rel/libz.so", soname: "../libz.so" }, ["/lib"]), []);
  assert.deepEqual(candidatePaths({ target: "x", soname: ".." }, ["/lib"]), []);
});

test("only a regular file with the target's build-id is taken, once per inode; known inodes are skipped", () => {
  const { lib } = libraryFixtures();
  const other = compileC({
    sources: ["elf/lib.c"],
    kind: "shared",
    flags: ["-O2", "-Wl,--build-id=sha1"],
    name: "elf-lib",
  });
  const target = hexBytes(readElf(readFileSync(lib)).buildId()!);
  const a = join(tmp.dir, "a");
  const b = join(tmp.dir, "b");
  const c = join(tmp.dir, "c");
  for (const d of [a, b, c]) mkdirSync(d);
  copyFileSync(other, join(a, "libanswer.so")); // same name, another build-id
  execFileSync("mkfifo", [join(b, "libanswer.so")]); // must not block the reader
  copyFileSync(lib, join(c, "libanswer.so"));
  linkSync(join(c, "libanswer.so"), join(tmp.dir, "hardlink.so")); // same inode under a second name
  const hints = { target, file: join(tmp.dir, "hardlink.so"), soname: "libanswer.so" };
  const found = findLibraryFiles(hints, createBuildIdCache(), new Set(), [a, b, c]);
  assert.deepEqual(
    found.map((f) => f.mark),
    [{ buildId: target, path: join(tmp.dir, "hardlink.so") }],
  );
  assert.match(found[0]!.key, /^[0-9a-f]{2,}:[0-9a-f]{2,}:\d+$/);
  assert.deepEqual(findLibraryFiles(hints, createBuildIdCache(), new Set([found[0]!.key]), [a, b, c]), []);
  assert.deepEqual(
    findLibraryFiles({ ...hints, target: "00".repeat(20) }, createBuildIdCache(), new Set(), [a, b, c]),
    [],
  );
});
