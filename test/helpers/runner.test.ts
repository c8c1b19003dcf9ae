/**
 * The test runner (scripts/test.mjs) keeps its promises: a file that leaves
 * a process behind fails, the process is named and killed; a file that hangs
 * is killed after its timeout and fails; a passing file passes.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { ROOT } from "./cc.ts";

/** `env` less NODE_TEST_CONTEXT, which this file's own runner sets and a nested runner must not see. */
function withoutTestContext(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const out = { ...env };
  delete out["NODE_TEST_CONTEXT"];
  return out;
}

/** Run scripts/test.mjs on `files` with `env` added; its exit status and output. */
function runner(files: string[], env: Record<string, string> = {}): Promise<{ status: number; out: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [join(ROOT, "scripts/test.mjs"), ...files], {
      cwd: ROOT,
      env: { ...withoutTestContext(process.env), ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    child.stdout.setEncoding("utf8").on("data", (d: string) => {
      out += d;
    });
    child.stderr.setEncoding("utf8").on("data", (d: string) => {
      out += d;
    });
    child.on("close", (code) => resolve({ status: code ?? -1, out }));
  });
}

function alive(pid: number): boolean {
  try {
    return !/\) [ZX] /.test(readFileSync(`/proc/${pid}/stat`, "utf8"));
  } catch {
    return false;
  }
}

test("a file that leaves a process behind fails, naming it, and the process is killed", async () => {
  const file = "test/fixtures/runner/leaves-a-process.ts";
  const r = await runner([file]);
  const pid = Number(/# left pid=(\d+)/.exec(r.out)?.[1]);
  assert.ok(pid > 0, r.out);
  assert.equal(r.status, 1, r.out);
  assert.match(
    r.out,
    new RegExp(`${file} left 1 process\\(es\\) behind \\(killed now\\): pid ${pid} \\(.*\\): sleep 1000`),
  );
  assert.match(r.out, /✖ 1 file\(s\) failed/);
  assert.equal(alive(pid), false, `pid ${pid} was killed`);
});

test("a file that hangs is killed after its timeout and fails", async () => {
  const file = "test/fixtures/runner/hangs.ts";
  const r = await runner([file], { XSPLICE_TEST_FILE_TIMEOUT: "3" });
  assert.equal(r.status, 1, r.out);
  assert.match(
    r.out,
    new RegExp(`${file} ran longer than 3 s \\(XSPLICE_TEST_FILE_TIMEOUT\\) and was (stopped|killed)`),
  );
});

test("a passing file passes, with its counts", async () => {
  const r = await runner(["src/bounded-cache.test.ts"]);
  assert.equal(r.status, 0, r.out);
  assert.match(r.out, /1 file\(s\), tests \d+, pass \d+, fail 0/);
});
