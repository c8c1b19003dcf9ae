/**
 * `xsplice build` as a subprocess through bin/xsplice.js (SPEC §10): the JSON
 * document, the text, exit statuses and the one-line error.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { buildPayload } from "../../src/build/index.ts";
import { readPayload } from "../../src/payload/index.ts";
import { ROOT } from "../helpers/cc.ts";
import { buildTarget, fixture, nm, nmOne, outDir, readelfBuildIds } from "./_targets.ts";

let dir: string;
let target: string;

function xsplice(args: string[]) {
  return spawnSync(process.execPath, [join(ROOT, "bin/xsplice.js"), ...args], { encoding: "utf8" });
}

before(() => {
  dir = outDir();
  target = buildTarget("build-target");
});

after(() => rmSync(dir, { recursive: true, force: true }));

test("build --json: the document matches the file and the library's build", () => {
  const out = join(dir, "cli.xsplice");
  const r = xsplice(["build", fixture("fix.c"), "--target", target, "-o", out, "--name", "fix", "--json"]);
  assert.equal(r.status, 0, r.stderr);
  const doc = JSON.parse(r.stdout);
  const ids = readelfBuildIds(out);
  assert.equal(doc.buildId, ids.get(".note.gnu.build-id"));
  assert.equal(doc.target, ids.get(".xsplice.target"));
  assert.equal(doc.depends, ids.get(".xsplice.target"));
  const compute = doc.funcs.find((f: { name: string }) => f.name === "compute");
  const o = nmOne(nm(target), "compute");
  assert.equal(compute.oldAddr, `0x${o.addr.toString(16)}`);
  assert.equal(compute.oldSize, Number(o.size));
  assert.equal(compute.replacement, "fixed_compute");
  assert.equal(readPayload(readFileSync(out)).metadata["name"], "fix");
  // Same inputs through the library: byte-identical payload.
  const lib = buildPayload({
    sources: [fixture("fix.c")],
    target,
    out: join(dir, "lib.xsplice"),
    name: "fix",
  });
  assert.equal(lib.buildId, doc.buildId);
});

test("build text output, --cflags and --depends", () => {
  const first = join(dir, "first.xsplice");
  assert.equal(xsplice(["build", fixture("fix.c"), "--target", target, "-o", first]).status, 0);
  const out = join(dir, "stacked.xsplice");
  const r = xsplice([
    "build",
    fixture("stack.c"),
    "--target",
    target,
    "-o",
    out,
    "--depends",
    first,
    // parseArgs takes a value starting with "-" only in the --opt=value form.
    "--cflags=-g -Wall -Werror",
  ]);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /^built .*stacked\.xsplice$/m);
  assert.match(r.stdout, /target-util\.c#helper @ 0x[0-9a-f]+ \(\d+ bytes\): -> helper_v2/);
  assert.equal(
    readelfBuildIds(out).get(".xsplice.depends"),
    readelfBuildIds(first).get(".note.gnu.build-id"),
  );
  // --cflags reached the compiler: -g left DWARF in the payload.
  assert.match(spawnSync("readelf", ["-S", "-W", out], { encoding: "utf8" }).stdout, /\.debug_info/);
});

test("errors: one line naming the operation and errno, exit status 1", () => {
  const r = xsplice(["build", fixture("missing.c"), "--target", target, "-o", join(dir, "x.xsplice")]);
  assert.equal(r.status, 1);
  assert.match(r.stderr, /^xsplice: build .*missing\.c: ENOENT: .*no_such_function.*\n$/);
  const broken = xsplice([
    "build",
    fixture("broken.c"),
    "--target",
    target,
    "-o",
    join(dir, "y.xsplice"),
    "--json",
  ]);
  assert.equal(broken.status, 1);
  const doc = JSON.parse(broken.stdout);
  assert.equal(doc.error, "EINVAL");
  assert.match(doc.message, /undeclared_variable/);
  const noTarget = xsplice(["build", fixture("fix.c"), "-o", join(dir, "z.xsplice")]);
  assert.equal(noTarget.status, 1);
  assert.match(noTarget.stderr, /EINVAL: missing --target ELF/);
});
