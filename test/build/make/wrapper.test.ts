/**
 * The `xsplice make` compiler wrapper on its own (SPEC §13): every compile's
 * object is copied into the store when it is written, so a build that
 * compiles one path twice or moves its objects leaves each compile its own
 * object, and the log names the copy and the source.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, test } from "node:test";
import { installWrappers, parseLog } from "../../../src/build/make/index.ts";
import { BUILD_DIR } from "../../helpers/cc.ts";

mkdirSync(BUILD_DIR, { recursive: true });
const root = mkdtempSync(join(BUILD_DIR, "wrapper-"));
after(() => rmSync(root, { recursive: true, force: true }));

test("two compiles into one path, the first moved away: each has its own stored object", () => {
  const bin = join(root, "bin");
  const store = join(root, "store");
  mkdirSync(bin);
  mkdirSync(store);
  mkdirSync(join(root, "objs"));
  const log = join(root, "cc.log");
  const { cc } = installWrappers(bin);
  writeFileSync(join(root, "x.c"), "int x_value(void) { return X; }\n");
  const env = { ...process.env, XSPLICE_CC_LOG: log, XSPLICE_OBJ_STORE: store, XSPLICE_REAL_CC: "gcc" };
  execFileSync(cc, ["-O2", "-fPIC", "-DX=1", "-c", "-o", "objs/x.o", "x.c"], { cwd: root, env });
  renameSync(join(root, "objs", "x.o"), join(root, "x.lo"));
  execFileSync(cc, ["-O2", "-DX=2", "-c", "x.c"], { cwd: root, env }); // no -o: x.o in the cwd
  execFileSync(cc, ["-O2", "-DX=3", "-E", "x.c"], { cwd: root, env, stdio: "ignore" }); // not a compile to an object
  const compiles = parseLog(readFileSync(log, "utf8"));
  assert.equal(compiles.length, 2, "one line per -c compile");
  assert.deepEqual(
    compiles.map((c) => [c.object, c.source]),
    [
      [join(root, "objs", "x.o"), "x.c"],
      [join(root, "x.o"), "x.c"],
    ],
  );
  const [first, second] = compiles.map((c) => readFileSync(c.stored!));
  assert.deepEqual(first, readFileSync(join(root, "x.lo")), "the moved object's copy is the first compile");
  assert.deepEqual(second, readFileSync(join(root, "x.o")));
  assert.notDeepEqual(first, second);
  assert.ok(
    compiles.every((c) => c.args.includes("-c") && !c.args.includes("-ffunction-sections")),
    "the log has the build's own arguments",
  );
});
