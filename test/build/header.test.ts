/**
 * include/xsplice.h (SPEC §1, §7, §11): the layouts as a compiled program sees
 * them, in C and C++, and the macros' sections as readelf sees them.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { INCLUDE, tool } from "../helpers/cc.ts";
import { fixture, outDir } from "./_targets.ts";

let dir: string;

before(() => {
  dir = outDir();
});

after(() => rmSync(dir, { recursive: true, force: true }));

const PROBE = `#include <stdio.h>
#include <xsplice.h>
#define F(s, f) printf("\\"%s.%s\\": %zu,", #s, #f, offsetof(struct s, f))
int main(void) {
  printf("{");
  F(xsplice_patch_func, new_addr); F(xsplice_patch_func, new_size); F(xsplice_patch_func, old_addr);
  F(xsplice_patch_func, old_size); F(xsplice_patch_func, name); F(xsplice_patch_func, pad);
  F(xsplice_symbol, addr); F(xsplice_symbol, name);
  F(xsplice_payload, name); F(xsplice_payload, rc); F(xsplice_payload, funcs); F(xsplice_payload, count);
  printf("\\"sizes\\": [%zu, %zu, %zu]}\\n", sizeof(struct xsplice_patch_func),
         sizeof(struct xsplice_symbol), sizeof(struct xsplice_payload));
  return 0;
}
`;

const LAYOUT = {
  "xsplice_patch_func.new_addr": 0,
  "xsplice_patch_func.new_size": 8,
  "xsplice_patch_func.old_addr": 16,
  "xsplice_patch_func.old_size": 24,
  "xsplice_patch_func.name": 32,
  "xsplice_patch_func.pad": 40,
  "xsplice_symbol.addr": 0,
  "xsplice_symbol.name": 8,
  "xsplice_payload.name": 0,
  "xsplice_payload.rc": 8,
  "xsplice_payload.funcs": 16,
  "xsplice_payload.count": 24,
  sizes: [64, 16, 64],
};

for (const [compiler, std, ext] of [
  ["gcc", "-std=gnu11", "c"],
  ["g++", "-std=gnu++17", "cc"],
] as const) {
  test(`layouts seen by ${compiler} ${std} match SPEC §1 and the documented payload struct`, () => {
    const src = join(dir, `probe.${ext}`);
    const exe = join(dir, `probe-${compiler}`);
    writeFileSync(src, PROBE);
    tool(compiler, [std, "-Wall", "-Wextra", "-Werror", `-I${INCLUDE}`, "-o", exe, src]);
    assert.deepEqual(JSON.parse(execFileSync(exe, { encoding: "utf8" })), LAYOUT);
  });
}

test("every macro compiles warning-free in C and C++ into the SPEC §1 sections", () => {
  const flags = ["-c", "-O2", "-fPIC", "-ffunction-sections", "-fdata-sections", `-I${INCLUDE}`];
  const cObj = join(dir, "hooks.o");
  tool("gcc", ["-std=gnu11", "-Wall", "-Wextra", "-Werror", ...flags, "-o", cObj, fixture("hooks-all.c")]);
  tool("g++", [
    "-x",
    "c++",
    "-Wall",
    "-Werror",
    ...flags,
    "-o",
    join(dir, "hooks-cc.o"),
    fixture("hooks-all.c"),
  ]);
  const sections = tool("readelf", ["-S", "-W", cObj]);
  const size = (name: string) => {
    const m = new RegExp(
      ` ${name.replace(/\./g, "\\.")} +PROGBITS +[0-9a-f]+ [0-9a-f]+ ([0-9a-f]+) .* (\\d+)$`,
      "m",
    ).exec(sections);
    assert.ok(m, `section ${name}`);
    assert.equal(m[2], name === ".modinfo" ? "1" : "8", `${name} alignment`);
    return Number.parseInt(m[1]!, 16);
  };
  assert.equal(size(".xsplice.hooks.load"), 16, "two load hooks");
  assert.equal(size(".xsplice.hooks.unload"), 8);
  for (const k of ["preapply", "postapply", "prerevert", "postrevert", "apply", "revert"]) {
    assert.equal(size(`.xsplice.hooks.${k}`), 8, k);
  }
  assert.equal(size(".modinfo"), "cve=CVE-2026-0002\0author=test\0".length);
});

test("XSPLICE_SYMBOL names a static as file.c#name in the object's symbol table", () => {
  const obj = join(dir, "fix.o");
  tool("gcc", ["-c", "-O2", "-fPIC", `-I${INCLUDE}`, "-o", obj, fixture("fix.c")]);
  const undefinedSyms = tool("nm", ["-u", obj]);
  assert.match(undefinedSyms, /U target-main\.c#hits$/m);
  assert.match(undefinedSyms, /U target-util\.c#helper$/m);
});
