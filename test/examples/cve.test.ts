/**
 * A real published security fix applied live (issue #12; examples/zlib-cve/):
 * zlib CVE-2022-37434 in a running multi-threaded workload, the payload made
 * by `xsplice make` from the upstream fix, every step of
 * `examples/zlib-cve/run.ts --json` as claimed, and nothing left running.
 *
 * The zlib source comes from Debian's archive (apt-get source), cached under
 * test/.build/downloads/. Without it the test fails with the one line that
 * says what could not be fetched: a skipped test would read as a pass.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { ROOT } from "../helpers/cc.ts";

const RUN = join(ROOT, "examples/zlib-cve/run.ts");

interface Step {
  step: number;
  title: string;
  ok: boolean;
  observed: string;
  skipped?: boolean;
  data: Record<string, unknown>;
}

interface Doc {
  ok: boolean;
  steps: Step[];
  summary: {
    cve: string;
    pid: number;
    overflowBefore: boolean;
    overflowPatched: boolean;
    safePatched: boolean;
    overflowReverted: boolean;
    results: { ok: number; failed: number };
    stopWindowMs: number;
    make: { funcs: { name: string; status: string }[]; refused: unknown[]; target: string } | undefined;
  };
  error?: string;
}

function runExample(): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ["--import", "tsx", RUN, "--json"], {
      cwd: ROOT,
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (d: string) => {
      stdout += d;
    });
    child.stderr.setEncoding("utf8").on("data", (d: string) => {
      stderr += d;
    });
    // Two builds of zlib inside `xsplice make` on a busy 2-core machine.
    const timer = setTimeout(() => child.kill("SIGTERM"), 900_000);
    child.on("close", (status) => {
      clearTimeout(timer);
      resolve({ status, stdout, stderr });
    });
  });
}

function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2)[0] !== "Z";
  } catch {
    return false;
  }
}

test("zlib CVE-2022-37434: overflow shown, fixed live by xsplice make of the upstream patch, reverted", async () => {
  const r = await runExample();
  let doc: Doc;
  try {
    doc = JSON.parse(r.stdout);
  } catch {
    assert.fail(
      `run.ts --json printed no single JSON document (exit ${r.status}):\n${r.stdout}\n${r.stderr}`,
    );
  }
  const build = doc.steps[0]!;
  // The source download is the one thing outside the repository: say so in one line.
  if (!build.ok) assert.fail(`examples/zlib-cve could not be prepared: ${build.observed}`);
  const failed = doc.steps.filter((s) => !s.ok).map((s) => `step ${s.step} (${s.title}): ${s.observed}`);
  assert.deepEqual(failed, [], "every step behaved as claimed");
  assert.equal(doc.ok, true);
  assert.equal(r.status, 0, r.stderr);

  const s = doc.summary;
  assert.equal(s.overflowBefore, true, "the vulnerable inflate() overflowed");
  assert.equal(s.overflowPatched, false, "no overflow while patched");
  assert.equal(s.safePatched, true, "the crafted stream inflated correctly while patched");
  assert.equal(s.overflowReverted, true, "the overflow is back after the revert");
  assert.equal(s.results.failed, 0, "no workload result was wrong");
  assert.ok(s.results.ok > 1000, `the workload ran: ${s.results.ok} results`);
  assert.equal(typeof s.stopWindowMs, "number");
  // The upstream fix changes one function; the payload holds exactly that one.
  assert.deepEqual(
    s.make?.funcs.map((f) => [f.name, f.status]),
    [["inflate", "changed"]],
  );
  assert.deepEqual(s.make?.refused, []);
  assert.equal(alive(s.pid), false, "the workload is gone");
});
