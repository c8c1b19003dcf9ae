import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { copyFileSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { STT } from "../../src/elf/defs.ts";
import { readMaps } from "../../src/process/maps.ts";
import { findObjectByBuildId, mappedObjects, objectAt } from "../../src/process/objects.ts";
import { tool } from "../helpers/cc.ts";
import { buildDescribe, type Running, startDescribe } from "./_fixture.ts";

const LIBC = "/lib/x86_64-linux-gnu/libc.so.6";

function readelfBuildId(path: string): string {
  const m = /Build ID: ([0-9a-f]+)/.exec(tool("readelf", ["-n", path]));
  assert.ok(m, `readelf -n finds a build-id in ${path}`);
  return m[1]!;
}

let plain: Running;
before(async () => {
  plain = await startDescribe(buildDescribe("O2").exe);
});
after(async () => {
  await plain?.kill();
});

test("the object list matches /proc/PID/maps and readelf -n build-ids, executable first, vdso listed", () => {
  const objects = mappedObjects(plain.pid);
  const maps = readMaps(plain.pid);
  // Every file mapped from offset 0 that starts with the ELF magic is an object, and nothing else is.
  const elfPaths = new Set(
    maps
      .filter((m) => m.offset === 0n && m.path.startsWith("/"))
      .map((m) => m.path)
      .filter((p) => readFileSync(p).subarray(0, 4).toString("latin1") === "\x7fELF"),
  );
  const files = objects.filter((o) => o.kind !== "vdso");
  assert.deepEqual(new Set(files.map((o) => o.path)), elfPaths);
  assert.ok(elfPaths.size >= 4, "exe, libdescribe, libc, ld.so");
  for (const o of files) {
    assert.equal(o.buildId, readelfBuildId(o.path), o.path);
    assert.equal(findObjectByBuildId(objects, o.buildId!.toUpperCase()), o);
    // The range covers exactly the object's mappings in /proc/PID/maps.
    const own = maps.filter((m) => m.path === o.path);
    assert.equal(o.start, own[0]!.start);
    assert.equal(o.end, own[own.length - 1]!.end);
  }
  assert.equal(objects[0]!.kind, "executable");
  assert.equal(objects[0]!.path, buildDescribe("O2").exe);
  const names = objects.map((o) => o.path.split("/").pop());
  assert.ok(names.indexOf("libdescribe.so") < names.indexOf("libc.so.6"), `load order: ${names.join(" ")}`);

  const vdso = objects.find((o) => o.kind === "vdso");
  assert.ok(vdso, "the vdso is listed");
  const vdsoMap = maps.find((m) => m.path === "[vdso]")!;
  assert.equal(vdso.start, vdsoMap.start);
  assert.match(vdso.buildId ?? "", /^[0-9a-f]{40}$/);
  const gettime = vdso.lookup("__vdso_clock_gettime") ?? vdso.lookup("clock_gettime");
  assert.ok(gettime && vdso.contains(gettime.address), "vdso symbols are biased into its mapping");
  assert.ok(vdso.ehFrame(), "vdso CFI is readable from memory");
});

test("load bias of the PIE and the library: looked-up functions equal the addresses the program printed", () => {
  const objects = mappedObjects(plain.pid);
  const exe = objects[0]!;
  const lib = objects.find((o) => o.path.endsWith("/libdescribe.so"))!;
  assert.notEqual(exe.bias, 0n, "a PIE is loaded with a non-zero bias");
  assert.equal(exe.lookup("main")?.address, plain.printed.get("main_fn"));
  assert.equal(exe.lookup("chain_a")?.address, plain.printed.get("chain_a"));
  assert.equal(exe.lookup("other_fn")?.address, plain.printed.get("other_fn"));
  assert.equal(lib.lookup("lib_fn")?.address, plain.printed.get("lib_fn"));
  assert.equal(lib.dynamicLookup("lib_fn")?.address, plain.printed.get("lib_fn"));
  assert.equal(lib.dynamicLookup("lib_static"), undefined, "a static is not exported");
  assert.equal(exe.dynamicLookup("lib_fn"), undefined, "an import is not an export");
  // symbolAt names the function around an address, with the offset into it.
  const at = exe.symbolAt(plain.printed.get("chain_a")! + 3n);
  assert.deepEqual([at?.symbol.name, at?.offset], ["chain_a", 3n]);
  assert.equal(objectAt(objects, plain.printed.get("lib_fn")!), lib);
});

test("thread-locals of the executable carry their thread-pointer offset", () => {
  const exe = mappedObjects(plain.pid)[0]!;
  assert.equal(plain.tpoffs.size, 2);
  for (const [name, tpoff] of plain.tpoffs) {
    const s = exe.lookup(name);
    assert.equal(s?.type, STT.TLS, name);
    assert.equal(s?.tpoff, tpoff, name);
  }
});

test("statics: file.c#name finds each, a bare name only when one file defines it", () => {
  const exe = mappedObjects(plain.pid)[0]!;
  assert.equal(exe.lookup("describe-main.c#dup_static")?.address, plain.printed.get("dup_static"));
  assert.equal(exe.lookup("describe-other.c#dup_static")?.address, plain.printed.get("other_dup"));
  const bare = exe.resolve("dup_static");
  assert.equal(bare.kind, "ambiguous");
  assert.deepEqual(bare.kind === "ambiguous" ? bare.candidates.map((c) => c.file).sort() : [], [
    "describe-main.c",
    "describe-other.c",
  ]);
  assert.equal(exe.lookup("dup_static"), undefined);
  const only = exe.lookup("only_main_static");
  assert.equal(only?.address, plain.printed.get("only_main_static"));
  assert.equal(only?.file, "describe-main.c");
  assert.equal(exe.lookup("describe-other.c#only_main_static"), undefined);
  assert.equal(exe.resolve("no_such_symbol").kind, "missing");
});

test("libc: symbols from its separate debug file by build-id, versioned dynamic symbols bind the default", () => {
  const libc = mappedObjects(plain.pid).find((o) => o.path.endsWith("/libc.so.6"))!;
  const debug = `/usr/lib/debug/.build-id/${libc.buildId!.slice(0, 2)}/${libc.buildId!.slice(2)}.debug`;
  assert.equal(libc.debugFile, debug);
  // A local function that appears once in the debug file's symbol table (nm as the oracle).
  const nm = tool("nm", [debug]).split("\n");
  const counts = new Map<string, number>();
  for (const l of nm) {
    const name = l.split(" ")[2];
    if (name) counts.set(name, (counts.get(name) ?? 0) + 1);
  }
  const local = nm
    .map((l) => l.split(" "))
    .find((f) => f[1] === "t" && counts.get(f[2]!) === 1 && !f[2]!.includes("."));
  assert.ok(local, "nm lists a unique static function");
  const sym = libc.lookup(local[2]!);
  assert.equal(sym?.value, BigInt(`0x${local[0]}`));
  assert.equal(sym?.address, BigInt(`0x${local[0]}`) + libc.bias);
  assert.equal(sym?.type, STT.FUNC);
  // memcpy has two versions; an unversioned reference binds memcpy@@GLIBC_2.14 (nm -D as the oracle).
  const def = /^([0-9a-f]+) \w memcpy@@/m.exec(tool("nm", ["-D", LIBC]));
  assert.ok(def);
  assert.equal(libc.dynamicLookup("memcpy")?.value, BigInt(`0x${def[1]}`));
});

test("a stripped copy still yields its build-id and dynamic symbols", async () => {
  const stripped = buildDescribe("stripped");
  const unstripped = buildDescribe("O2");
  const run = await startDescribe(stripped.exe);
  try {
    const objects = mappedObjects(run.pid);
    const exe = objects[0]!;
    assert.equal(exe.path, stripped.exe);
    assert.equal(exe.elf.symbolTable(), undefined, "strip removed .symtab");
    assert.equal(exe.buildId, readelfBuildId(unstripped.exe), "same build-id as the unstripped build");
    assert.equal(exe.lookup("chain_a"), undefined, "no local symbols left");
    const lib = objects.find((o) => o.path === stripped.lib)!;
    assert.equal(lib.elf.symbolTable(), undefined);
    assert.equal(lib.dynamicLookup("lib_fn")?.address, run.printed.get("lib_fn"));
    assert.equal(lib.lookup("lib_fn")?.address, run.printed.get("lib_fn"));
    assert.equal(lib.lookup("lib_static"), undefined);
    // The executable's own definitions in .dynsym (the copy-relocated stdout) still resolve.
    const dynsyms = tool("nm", ["-D", "--defined-only", stripped.exe]).trim().split("\n");
    assert.ok(dynsyms.length > 0, "nm -D lists a definition");
    for (const line of dynsyms) {
      const [value, , versioned] = line.split(" ");
      const name = versioned!.split("@")[0]!;
      assert.equal(exe.dynamicLookup(name)?.value, BigInt(`0x${value}`), name);
      assert.equal(exe.dynamicLookup(name)?.address, BigInt(`0x${value}`) + exe.bias, name);
    }
  } finally {
    await run.kill();
  }
});

test("an executable deleted after start is still read, through /proc/PID/map_files", async () => {
  const build = buildDescribe("O2");
  const dir = mkdtempSync(join(tmpdir(), "xsplice-describe-"));
  copyFileSync(build.exe, join(dir, "describe"));
  copyFileSync(build.lib, join(dir, "libdescribe.so"));
  const run = await startDescribe(join(dir, "describe"));
  try {
    rmSync(dir, { recursive: true });
    const exe = mappedObjects(run.pid)[0]!;
    assert.equal(exe.deleted, true);
    assert.equal(exe.lookup("main")?.address, run.printed.get("main_fn"));
    assert.equal(exe.buildId, readelfBuildId(build.exe));
  } finally {
    await run.kill();
    rmSync(dir, { recursive: true, force: true });
  }
});

test("mappedObjects of a process that is gone is ESRCH", () => {
  const r = spawnSync("/bin/true");
  assert.equal(r.status, 0);
  assert.throws(() => mappedObjects(r.pid), { errno: "ESRCH" });
});
