#!/usr/bin/env node
// Runs every *.test.ts under src/ and test/ with node's own test runner
// (Node 20's --test does not expand globs). Extra arguments narrow the run:
// `npm test -- src/elf` runs only the tests under src/elf; arguments starting
// with `-` go to `node --test` (e.g. `--test-name-pattern=stop`).
//
// The suite starts real processes and ptraces them on a shared machine, so the
// runner guards against a test that hangs or leaves a process behind:
// - each file has a timeout (XSPLICE_TEST_FILE_TIMEOUT seconds, default 1200):
//   node's own (--test-timeout, which in Node 20's --test mode bounds the file
//   as a whole, not each test in it: the report names the test that was
//   running), then, GRACE_MS later, the runner kills the file's whole process
//   group; the file counts as failed. Tests that may hang carry a shorter
//   `{ timeout }` of their own;
// - every process a file starts carries XSPLICE_TEST_RUN=<run id> in its
//   environment; one still alive after its file ended (given up to 10 s for
//   exits in flight) fails the file, is named with its command line, state
//   and tracer, and is killed.
import { spawn, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { preflight } from "./preflight.mjs";

function findTests(dir, out) {
  let entries;
  try {
    entries = readdirSync(dir);
  } catch {
    return out;
  }
  for (const name of entries.sort()) {
    if (name === "node_modules" || name.startsWith(".")) continue;
    const path = join(dir, name);
    if (statSync(path).isDirectory()) findTests(path, out);
    else if (name.endsWith(".test.ts")) out.push(path);
  }
  return out;
}

function seconds(name, fallback) {
  const v = Number(process.env[name]);
  return Number.isFinite(v) && v > 0 ? v : fallback;
}

const problems = preflight();
if (problems.length > 0) {
  for (const p of problems) console.error(`xsplice tests: ${p}`);
  process.exit(1);
}

const roots = process.argv.slice(2).filter((a) => !a.startsWith("-"));
const flags = process.argv.slice(2).filter((a) => a.startsWith("-"));
const files = [];
for (const root of roots.length ? roots : ["src", "test"]) {
  // A file named on the command line runs whatever its name (the runner's own test runs fixtures).
  if (root.endsWith(".ts")) files.push(root);
  else findTests(root, files);
}
if (files.length === 0) {
  console.error("no test files found");
  process.exit(1);
}
// The CLI tests run bin/xsplice.js, i.e. dist/: rebuild it from the sources under test.
const built = spawnSync(process.execPath, [join(import.meta.dirname, "build.mjs"), "--no-types"], {
  stdio: "inherit",
});
if (built.status !== 0) process.exit(built.status ?? 1);

const FILE_TIMEOUT_S = seconds("XSPLICE_TEST_FILE_TIMEOUT", 1200);
/** How long a file's processes may take to go after the file ended (pipes closing, exits in flight). */
const GRACE_MS = 10_000;
const RUN_ID = `${process.pid}-${randomBytes(4).toString("hex")}`;
const MARK = `XSPLICE_TEST_RUN=${RUN_ID}`;

/** Processes (other than this runner) whose environment carries this run's mark. */
function marked() {
  const out = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue;
    let env;
    try {
      env = readFileSync(`/proc/${name}/environ`, "latin1");
    } catch {
      continue; // gone, or a kernel thread
    }
    if (env.split("\0").includes(MARK)) out.push(Number(name));
  }
  return out;
}

/** One line about a process: pid, state, tracer and command line. */
function describe(pid) {
  const status = (() => {
    try {
      return readFileSync(`/proc/${pid}/status`, "utf8");
    } catch {
      return "";
    }
  })();
  const field = (k) => new RegExp(`^${k}:\\s*(.*)$`, "m").exec(status)?.[1] ?? "?";
  let cmd = "";
  try {
    cmd = readFileSync(`/proc/${pid}/cmdline`, "latin1").split("\0").join(" ").trim();
  } catch {
    // gone meanwhile
  }
  const tracer = field("TracerPid");
  return `pid ${pid} (${field("State")}${tracer !== "0" && tracer !== "?" ? `, traced by ${tracer}` : ""}): ${cmd.slice(0, 200)}`;
}

function killAll(pids) {
  for (const pid of pids) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // already gone
    }
  }
}

/** Processes of this run still alive once they had GRACE_MS to go; killed, and described. */
async function leftovers() {
  const end = Date.now() + GRACE_MS;
  let left = marked();
  while (left.length > 0 && Date.now() < end) {
    await new Promise((r) => setTimeout(r, 50));
    left = marked();
  }
  const lines = left.map(describe);
  killAll(left);
  return lines;
}

let current;
for (const sig of ["SIGINT", "SIGTERM"]) {
  process.on(sig, () => {
    if (current) killGroup(current);
    killAll(marked());
    process.exit(130);
  });
}

function killGroup(child) {
  try {
    process.kill(-child.pid, "SIGKILL");
  } catch {
    // gone
  }
}

const color = process.stdout.isTTY ? { FORCE_COLOR: "1" } : {};
const totals = new Map();
// A node test runner that finds NODE_TEST_CONTEXT set (this runner started from inside a test) skips
// its files with only a warning: it must not be inherited.
const childEnv = { ...process.env, ...color, XSPLICE_TEST_RUN: RUN_ID };
delete childEnv.NODE_TEST_CONTEXT;
const failed = [];
for (const file of files) {
  console.log(`\n▶ ${file}`);
  // Its own process group, so that a file that runs out of time goes with everything it started.
  const child = spawn(
    process.execPath,
    [
      "--import",
      "tsx",
      "--test",
      // The spec reporter unless the caller chose one (a second reporter would need its own destination).
      ...(flags.some((f) => f.startsWith("--test-reporter")) ? [] : ["--test-reporter=spec"]),
      `--test-timeout=${FILE_TIMEOUT_S * 1000}`,
      // A test that timed out may leave handles open; the file's process must still end.
      "--test-force-exit",
      ...flags,
      file,
    ],
    {
      stdio: ["ignore", "pipe", "inherit"],
      detached: true,
      env: childEnv,
    },
  );
  current = child;
  let partial = "";
  let counted = false;
  // Node's own file timeout (--test-timeout) ends the file before the runner's kill does.
  let nodeTimedOut = false;
  child.stdout.setEncoding("utf8").on("data", (chunk) => {
    process.stdout.write(chunk);
    partial += chunk;
    const parts = partial.split("\n");
    partial = parts.pop();
    for (const line of parts) {
      // The summary of the spec reporter ("ℹ tests 12", "ℹ pass 11", ...) or of tap ("# tests 12").
      const m = /^\S*(?:ℹ|#)\S* (tests|pass|fail|cancelled|skipped|todo) (\d+)/.exec(line);
      if (m) totals.set(m[1], (totals.get(m[1]) ?? 0) + Number(m[2]));
      if (m?.[1] === "tests") counted = true;
      if (/test timed out after \d+ms/.test(line)) nodeTimedOut = true;
    }
  });
  let timedOut = false;
  const timer = setTimeout(
    () => {
      timedOut = true;
      killGroup(child);
    },
    FILE_TIMEOUT_S * 1000 + GRACE_MS,
  );
  const code = await new Promise((resolve) => child.on("close", (c, signal) => resolve(c ?? signal)));
  clearTimeout(timer);
  current = undefined;
  const reasons = [];
  if (timedOut || nodeTimedOut)
    reasons.push(
      `ran longer than ${FILE_TIMEOUT_S} s (XSPLICE_TEST_FILE_TIMEOUT) and was ${timedOut ? "killed" : "stopped"}`,
    );
  else if (code !== 0) reasons.push(`exited with ${code}`);
  else if (!counted) reasons.push("reported no test results");
  const left = await leftovers();
  if (left.length > 0)
    reasons.push(`left ${left.length} process(es) behind (killed now): ${left.join("; ")}`);
  for (const r of reasons) console.log(`✖ ${file} ${r}`);
  if (reasons.length > 0) failed.push(file);
}

const counts = [...totals].map(([k, v]) => `${k} ${v}`).join(", ");
console.log(`\n${files.length} file(s)${counts ? `, ${counts}` : ""}`);
if (failed.length > 0) {
  console.log(`✖ ${failed.length} file(s) failed:\n${failed.map((f) => `  ${f}`).join("\n")}`);
  process.exit(1);
}
