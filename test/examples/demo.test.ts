/**
 * `npm run demo` end to end (issue #7): the demo run with `--json` must
 * report every step as claimed — leak before, no leak while patched, leak
 * again after the revert, zero failed requests, a stop window — exit 0, and
 * leave no process behind; Ctrl-C in the middle must also stop everything it
 * started. A demo that fails fails every test here: both runs require every
 * step ok and exit 0.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { ROOT } from "../helpers/cc.ts";
import { waitUntil } from "../helpers/wait.ts";

const DEMO = join(ROOT, "examples/demo.ts");

/** Run the demo; resolves with exit status and output. `onLine` sees stdout lines as they come. */
function runDemo(
  args: string[],
  onLine?: (line: string, child: ReturnType<typeof spawn>) => void,
): Promise<{ status: number | null; signal: string | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ["--import", "tsx", DEMO, ...args], {
      cwd: ROOT,
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    let partial = "";
    child.stdout.setEncoding("utf8").on("data", (d: string) => {
      stdout += d;
      partial += d;
      let nl = partial.indexOf("\n");
      while (nl >= 0) {
        onLine?.(partial.slice(0, nl), child);
        partial = partial.slice(nl + 1);
        nl = partial.indexOf("\n");
      }
    });
    child.stderr.setEncoding("utf8").on("data", (d: string) => {
      stderr += d;
    });
    // A guard only, below the runner's per-test timeout: a demo still running by then has hung.
    const timer = setTimeout(() => child.kill("SIGKILL"), 240_000);
    child.on("close", (status, signal) => {
      clearTimeout(timer);
      resolve({ status, signal, stdout, stderr });
    });
  });
}

/** Pids whose parent is `ppid` (from /proc). */
function childrenOf(ppid: number): number[] {
  const out: number[] = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, "utf8");
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      if (Number(fields[1]) === ppid) out.push(Number(name));
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2)[0] !== "Z";
  } catch {
    return false;
  }
}

interface Step {
  step: number;
  title: string;
  ok: boolean;
  observed: string;
  skipped?: boolean;
  data: Record<string, unknown>;
}

test("npm run demo -- --json: every step behaves as claimed, exit 0, nothing left running", async () => {
  const r = await runDemo(["--json"]);
  let doc: {
    ok: boolean;
    steps: Step[];
    summary: {
      serverPid: number;
      secretLeakedBefore: boolean;
      secretLeakedPatched: boolean;
      secretLeakedReverted: boolean;
      stopWindowMs: number;
      requests: { ok: number; failed: number; maxUs: number };
    };
  };
  try {
    doc = JSON.parse(r.stdout);
  } catch {
    assert.fail(`--json printed more than one JSON document:\n${r.stdout}\n${r.stderr}`);
  }
  const failed = doc.steps.filter((s) => !s.ok).map((s) => `step ${s.step} (${s.title}): ${s.observed}`);
  assert.deepEqual(failed, [], "every step behaved as claimed");
  assert.deepEqual(
    doc.steps.map((s) => s.step),
    [1, 2, 3, 4, 5, 6],
  );
  assert.equal(doc.ok, true);
  assert.equal(r.status, 0, r.stderr);

  const s = doc.summary;
  assert.equal(s.secretLeakedBefore, true);
  assert.equal(s.secretLeakedPatched, false);
  assert.equal(s.secretLeakedReverted, true);
  assert.equal(s.requests.failed, 0);
  // How many requests a busy machine serves, and how long the stop took, are not results: only that
  // there were some, and that a window was measured.
  assert.ok(s.requests.ok > 0, `the load ran: ${s.requests.ok} requests`);
  assert.equal(typeof s.stopWindowMs, "number");
  assert.ok(s.stopWindowMs >= 0, `stop window ${s.stopWindowMs} ms`);
  assert.equal(alive(s.serverPid), false, "the server is gone");
});

test("text output: six numbered steps, a six-row summary table of ok rows, 'demo passed', exit 0", async () => {
  const r = await runDemo([]);
  assert.match(r.stdout, /^Summary$/m);
  const rows = r.stdout.split("\n").filter((l) => /^\s+[1-6]\s{2,}\S.*\s(ok|FAILED|skipped)\b/.test(l));
  assert.equal(rows.length, 6, r.stdout);
  for (let n = 1; n <= 6; n++) assert.match(r.stdout, new RegExp(`^\\[${n}/6\\] `, "m"), `step ${n} printed`);
  assert.deepEqual(
    rows.filter((l) => /\s(FAILED|skipped)\b/.test(l)),
    [],
    "every step ok",
  );
  assert.match(r.stdout, /demo passed/);
  assert.equal(r.status, 0, r.stdout + r.stderr);
});

test("Ctrl-C during the demo stops every process it started", async () => {
  let kids: number[] = [];
  let sent = false;
  const r = await runDemo([], (line, child) => {
    // Interrupt once the server and the load generator are both running.
    if (!sent && /^\s+loadgen: \d+ connections/.test(line)) {
      sent = true;
      kids = childrenOf(child.pid!);
      child.kill("SIGINT");
    }
  });
  assert.ok(sent, `the demo reached step 2: ${r.stdout}`);
  assert.ok(kids.length >= 2, `server and loadgen were children of the demo: ${kids}`);
  assert.equal(r.status, 130, r.stdout);
  assert.match(r.stdout, /SIGINT: stopping every process the demo started/);
  // Each one goes (SIGKILLed or told to end); waited for, since a dying process takes a moment.
  await waitUntil(`no process of the demo left (${kids})`, () => kids.every((k) => !alive(k))).catch(
    () => {},
  );
  assert.deepEqual(
    kids.filter((k) => alive(k)),
    [],
    "no process of the demo is left",
  );
});
