/**
 * Issue #11 item 10: `inspect` (and every command that reads a payload file,
 * through `readPayloadFile`) refuses what is not a regular file at once, in
 * one line: `/dev/zero` used to be read without end (800 MB) and a FIFO
 * blocked for ever.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { tempDir, xsplice } from "./_run.ts";

describe("inspect refuses files that are not regular", () => {
  let tmp: { dir: string; remove: () => void };
  let fifo: string;
  before(() => {
    tmp = tempDir("inspect");
    fifo = join(tmp.dir, "payload.fifo");
    execFileSync("mkfifo", [fifo]);
  });
  after(() => tmp.remove());

  for (const [what, file, kind] of [
    ["a FIFO nobody writes", () => fifo, "a FIFO"],
    ["/dev/zero", () => "/dev/zero", "a character device"],
    ["a directory", () => tmp.dir, "a directory"],
  ] as const) {
    it(`${what}: one EINVAL line naming the kind, nothing read`, async () => {
      const r = await xsplice(["inspect", file()]);
      assert.equal(r.status, 1, r.stderr);
      assert.equal(r.stdout, "");
      assert.equal(r.stderr.trimEnd().split("\n").length, 1, r.stderr);
      assert.match(r.stderr, new RegExp(`EINVAL: .* is ${kind}, not a regular file`));
    });
  }

  it("an error line quoting a name shows its control characters escaped, on one line", async () => {
    const r = await xsplice(["upload", String(process.pid), "fix", "/nonexistent/\x1b]0;pwned\x07\n\x9b2J"]);
    assert.equal(r.status, 1, r.stderr);
    assert.equal(
      r.stderr,
      "xsplice: upload fix in " +
        process.pid +
        ": ENOENT: cannot read /nonexistent/\\x1b]0;pwned\\x07\\x0a\\x9b2J: no such file\n",
    );
  });

  it("upload reads its payload the same way", async () => {
    const r = await xsplice(["upload", String(process.pid), "fix", "/dev/zero"]);
    assert.equal(r.status, 1, r.stderr);
    assert.match(r.stderr, /EINVAL: \/dev\/zero is a character device, not a regular file/);
  });
});
