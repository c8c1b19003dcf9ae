/**
 * `xsplice make` on real build systems (SPEC §13): a plain Makefile that
 * names its own compiler, and a configure script in autoconf's manner, built
 * in-tree and out-of-tree. The user builds the target in the tree; `xsplice
 * make` rebuilds it twice, diffs, and the payload is loaded into the running
 * target, changes its answer, and is reverted. Also: a target that is not
 * what the tree builds is refused, naming the functions that differ.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { cpSync, existsSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { join } from "node:path";
import { after, test } from "node:test";
import { xsplice } from "../../cli/_run.ts";
import { BUILD_DIR, FIXTURES } from "../../helpers/cc.ts";
import { startTarget, type Target } from "../../helpers/target.ts";

const FLAGS =
  "-O2 -g -ffunction-sections -fdata-sections -flive-patching=inline-clone -fno-omit-frame-pointer -fPIE";

mkdirSync(BUILD_DIR, { recursive: true });
const root = mkdtempSync(join(BUILD_DIR, "make-"));
const running: Target[] = [];
after(async () => {
  for (const t of running) await t.kill();
  rmSync(root, { recursive: true, force: true });
});

/** A fresh copy of fixture tree `name`, built the way its user would build it with `build` (a shell line). */
function userTree(name: string, build: string): string {
  const dir = join(root, `${name}-${running.length}-${Math.random().toString(36).slice(2, 8)}`);
  cpSync(join(FIXTURES, "make", name), dir, { recursive: true });
  execFileSync("sh", ["-c", build], { cwd: dir, stdio: ["ignore", "pipe", "pipe"] });
  return dir;
}

async function ask(t: Target): Promise<string> {
  const from = t.lines.length;
  t.send("x");
  return (await t.waitFor(/^out: /, { from })).slice("out: ".length);
}

interface Doc {
  funcs: { name: string; status: string }[];
  objects: { built: number; differing: number; diffed: number };
}

/** Make a payload for `target` (default `exe`) from `dir`, load it into the running `exe`, check, revert, check. */
async function makeAndPatch(dir: string, exe: string, command: string[], target = exe): Promise<Doc> {
  const out = join(dir, "fix.xsplice");
  const t = await startTarget(exe);
  running.push(t);
  try {
    assert.equal(await ask(t), "81");
    const args = [
      "make",
      "--src",
      dir,
      "--patch",
      join(dir, "fix.patch"),
      "--target",
      target,
      "-o",
      out,
      "--json",
    ];
    const m = await xsplice(command.length > 0 ? [...args, "--", ...command] : args);
    assert.equal(m.status, 0, m.stderr);
    assert.equal(m.stderr, "", "quiet with --json");
    const doc = JSON.parse(m.stdout) as Doc;
    const load = await xsplice(["load", String(t.pid), out, "--name", "make-fix"]);
    assert.equal(load.status, 0, load.stderr);
    assert.equal(await ask(t), "121", "the patched scale()");
    const revert = await xsplice(["revert", String(t.pid), "make-fix"]);
    assert.equal(revert.status, 0, revert.stderr);
    assert.equal(await ask(t), "81");
    return doc;
  } finally {
    await t.kill();
  }
}

test("plain Makefile, built in-tree (objects present): only util.o differs, scale is patched", async () => {
  const dir = userTree("plain", "make -s");
  const doc = await makeAndPatch(dir, join(dir, "prog"), []);
  assert.deepEqual(doc.funcs, [{ name: "scale", status: "changed", reason: "size 17 -> 19" }]);
  assert.deepEqual(doc.objects, { built: 2, differing: 1, diffed: 1 });
});

test("a source compiled twice (PIC object moved to .lo, non-PIC for an archive): the shared library's compile is chosen", async () => {
  // The non-PIC util.o is compiled last and stays at its path; the PIC one
  // that the library is linked from was moved away: pairing by path would
  // compare the archive's object with the library and refuse.
  const dir = userTree("twice", "make -s");
  const doc = await makeAndPatch(dir, join(dir, "prog"), [], join(dir, "libutil.so"));
  assert.deepEqual(doc.funcs, [{ name: "scale", status: "changed", reason: "size 20 -> 22" }]);
  assert.deepEqual(doc.objects, { built: 2, differing: 1, diffed: 1 });
});

test("./configure && make, in-tree", async () => {
  const dir = userTree("autotools", `CC=gcc CFLAGS="${FLAGS}" ./configure >/dev/null && make -s`);
  const doc = await makeAndPatch(dir, join(dir, "prog"), [
    "sh",
    "-c",
    `CFLAGS="${FLAGS}" ./configure && make`,
  ]);
  assert.deepEqual(
    doc.funcs.map((f) => f.name),
    ["scale"],
  );
});

test("../configure && make, out-of-tree", async () => {
  const dir = userTree(
    "autotools",
    `mkdir build && cd build && CC=gcc CFLAGS="${FLAGS}" ../configure >/dev/null && make -s`,
  );
  const doc = await makeAndPatch(dir, join(dir, "build", "prog"), [
    "sh",
    "-c",
    `cd build && CFLAGS="${FLAGS}" ../configure && make`,
  ]);
  assert.deepEqual(
    doc.funcs.map((f) => f.name),
    ["scale"],
  );
});

test("a target built with other flags is refused, naming the functions that differ; nothing written", async () => {
  const dir = userTree("plain", 'make -s CFLAGS="-O0 -g -fPIE"');
  const out = join(dir, "fix.xsplice");
  const m = await xsplice([
    "make",
    "--src",
    dir,
    "--patch",
    join(dir, "fix.patch"),
    "--target",
    join(dir, "prog"),
    "-o",
    out,
  ]);
  assert.notEqual(m.status, 0);
  assert.match(
    m.stderr,
    /EINVAL: the rebuilt original is not target .*: (main|util_answer|util\.c#scale) \(/,
  );
  assert.match(m.stderr, /other flags/);
  assert.equal(existsSync(out), false);
});

test("a patch that does not apply: EINVAL with patch's own words", async () => {
  const dir = userTree("plain", "make -s");
  execFileSync("sh", ["-c", "sed -i 's/x \\* 2/x * 7/' util.c"], { cwd: dir });
  const m = await xsplice([
    "make",
    "--src",
    dir,
    "--patch",
    join(dir, "fix.patch"),
    "--target",
    join(dir, "prog"),
    "-o",
    join(dir, "fix.xsplice"),
    "--json",
  ]);
  assert.notEqual(m.status, 0);
  assert.match(m.stdout + m.stderr, /applying .*fix\.patch/);
});
