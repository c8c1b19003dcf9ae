/**
 * bin/xsplice.js keeps V8's compiled code of the bundle per command in
 * `node_modules/.cache/xsplice/` (issue #13: compiling was a tenth of an
 * upload's CPU). A kept cache is used (not rewritten) by the next run; one that
 * is garbage or that others may write never breaks a command and is replaced;
 * a command that fails keeps nothing.
 */
import assert from "node:assert/strict";
import { chmodSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { ROOT } from "../helpers/cc.ts";
import { xsplice } from "./_run.ts";

const DIR = join(ROOT, "node_modules", ".cache", "xsplice");
const VERSION = (JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { version: string }).version;

/** The cache files of `command` (runs that start with an option are kept as "none"). */
function cacheFiles(command: string): string[] {
  try {
    return readdirSync(DIR)
      .filter((f) => f.startsWith(`${command}-`) && f.endsWith(".v8"))
      .map((f) => join(DIR, f));
  } catch {
    return [];
  }
}

async function version(): Promise<void> {
  const r = await xsplice(["--version"]);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, new RegExp(`^xsplice ${VERSION.replaceAll(".", "\\.")}\\n$`));
}

describe("the code cache of bin/xsplice.js", () => {
  it("is written by a command that succeeded, then used as it is", async () => {
    for (const f of cacheFiles("none")) rmSync(f);
    await version();
    const [file] = cacheFiles("none");
    assert.ok(file, "a cache file after the first run");
    assert.equal(statSync(file).mode & 0o777, 0o644);
    const before = statSync(file);
    await version();
    const after = statSync(file);
    // Rewritten only when V8 rejected it: the same inode and mtime mean it was accepted.
    assert.equal(after.ino, before.ino);
    assert.equal(after.mtimeMs, before.mtimeMs);
    assert.deepEqual(cacheFiles("none"), [file]);
  });

  it("garbage, or a file others may write, is not a cache: the command runs and the file is replaced", async () => {
    for (const mode of [0o644, 0o666]) {
      await version();
      const [file] = cacheFiles("none");
      assert.ok(file);
      const garbage = Buffer.alloc(4096, 0x5a);
      writeFileSync(file, garbage);
      chmodSync(file, mode);
      await version();
      assert.notDeepEqual(readFileSync(file), garbage, `mode ${mode.toString(8)}: replaced`);
      assert.equal(statSync(file).mode & 0o777, 0o644);
    }
  });

  it("a command that fails keeps nothing", async () => {
    const r = await xsplice(["no-such-command"]);
    assert.notEqual(r.status, 0);
    assert.deepEqual(cacheFiles("no-such-command"), []);
  });
});
