#!/usr/bin/env node
// Runs every *.test.ts under src/ and test/ with node's own test runner
// (Node 20's --test does not expand globs). Extra arguments narrow the run:
// `npm test -- src/elf` runs only the tests under src/elf.
import { spawnSync } from "node:child_process";
import { readdirSync, statSync } from "node:fs";
import { join } from "node:path";

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

const roots = process.argv.slice(2).filter((a) => !a.startsWith("-"));
const flags = process.argv.slice(2).filter((a) => a.startsWith("-"));
const files = [];
for (const root of roots.length ? roots : ["src", "test"]) {
  if (root.endsWith(".test.ts")) files.push(root);
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
// Tests stop real processes with ptrace on a 2-core machine: run files one at a
// time so that timing-sensitive tests do not compete with each other.
const r = spawnSync(
  process.execPath,
  ["--import", "tsx", "--test", "--test-concurrency=1", "--test-reporter=spec", ...flags, ...files],
  { stdio: "inherit" },
);
process.exit(r.status ?? 1);
