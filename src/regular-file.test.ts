import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { closeSync, mkdtempSync, rmSync, truncateSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { XspliceError } from "./errors.ts";
import { openRegularFile, readOpened } from "./regular-file.ts";

const dir = mkdtempSync(join(tmpdir(), "xsplice-regular-"));
after(() => rmSync(dir, { recursive: true, force: true }));

test("a regular file is opened and read to the size checked", () => {
  const f = join(dir, "plain");
  writeFileSync(f, "hello world");
  const o = openRegularFile(f, "plain");
  try {
    assert.equal(o.stat.size, 11);
    assert.equal(new TextDecoder().decode(readOpened(o, 5, "plain", 6)), "world");
  } finally {
    closeSync(o.fd);
  }
});

test("a FIFO with no writer, a character device and a directory are EINVAL at once", () => {
  const fifo = join(dir, "fifo");
  execFileSync("mkfifo", [fifo]);
  for (const [path, kind] of [
    [fifo, "a FIFO"],
    ["/dev/zero", "a character device"],
    [dir, "a directory"],
  ] as const)
    assert.throws(
      () => openRegularFile(path, path),
      (e: unknown) =>
        e instanceof XspliceError &&
        e.errno === "EINVAL" &&
        e.message === `${path} is ${kind}, not a regular file`,
    );
});

test("a file that shrank after the check is EIO, not short data", () => {
  const f = join(dir, "shrinks");
  writeFileSync(f, "0123456789");
  const o = openRegularFile(f, "shrinks");
  try {
    truncateSync(f, 4);
    assert.throws(() => readOpened(o, o.stat.size, "shrinks"), { errno: "EIO" });
  } finally {
    closeSync(o.fd);
  }
});
