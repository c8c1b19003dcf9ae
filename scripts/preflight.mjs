#!/usr/bin/env node
// What the test suite needs before it starts: the tools its oracles and fixtures run, root (tests
// ptrace real processes and switch to uid 65534 for the EPERM checks), and a kernel and container
// that allow ptrace. A missing piece stops the run at once with one line that names it and says how
// to get it, instead of a failure deep inside one test. `node scripts/preflight.mjs` runs it alone
// (`npm run check` does so before the typecheck); scripts/test.mjs runs it before any test.
import { accessSync, constants, readFileSync } from "node:fs";
import { delimiter, join } from "node:path";
import { fileURLToPath } from "node:url";

/** Executables the suite runs, and the Debian/Ubuntu package that brings each. */
const TOOLS = [
  ["gcc", "gcc"],
  ["ld", "binutils"],
  ["objcopy", "binutils"],
  ["readelf", "binutils"],
  ["nm", "binutils"],
  ["gdb", "gdb"],
  ["strace", "strace"],
  ["openssl", "openssl"],
];

/** Bits of /proc/self/status CapEff the suite uses (linux/capability.h). */
const CAP_SETUID = 7n;
const CAP_SYS_PTRACE = 19n;

function onPath(name) {
  for (const dir of (process.env.PATH ?? "").split(delimiter)) {
    if (dir === "") continue;
    try {
      accessSync(join(dir, name), constants.X_OK);
      return true;
    } catch {
      // not in this directory
    }
  }
  return false;
}

function read(path) {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return undefined;
  }
}

/** Problems that stop the run, one line each; empty when the machine has what the suite needs. */
export function preflight() {
  const problems = [];
  const [major, minor] = process.versions.node.split(".").map(Number);
  // --test-timeout and --test-force-exit, which keep a hung test from hanging the run, came in 20.14.
  if (major < 20 || (major === 20 && minor < 14))
    problems.push(`node ${process.versions.node} is too old: the tests need Node >= 20.14`);
  const missing = TOOLS.filter(([tool]) => !onPath(tool));
  if (missing.length > 0) {
    const packages = [...new Set(missing.map(([, pkg]) => pkg))].join(" ");
    problems.push(
      `missing ${missing.map(([tool]) => tool).join(", ")}: install with \`apt-get install -y ${packages}\``,
    );
  }
  const root = fileURLToPath(new URL("..", import.meta.url));
  try {
    accessSync(join(root, "node_modules/tsx/package.json"));
  } catch {
    problems.push("missing node_modules/tsx: run `npm ci` first");
  }
  if (process.getuid?.() !== 0) {
    problems.push(
      "not root: the tests ptrace real processes and switch users; run them as root (sudo npm test)",
    );
  } else {
    const capEff = /^CapEff:\s*([0-9a-f]+)$/m.exec(read("/proc/self/status") ?? "")?.[1];
    const caps = capEff === undefined ? undefined : BigInt(`0x${capEff}`);
    if (caps !== undefined && !((caps >> CAP_SYS_PTRACE) & 1n))
      problems.push("no CAP_SYS_PTRACE: in a container, start it with `--cap-add SYS_PTRACE`");
    if (caps !== undefined && !((caps >> CAP_SETUID) & 1n))
      problems.push("no CAP_SETUID: the EPERM tests run a helper as uid 65534; grant CAP_SETUID");
  }
  if (read("/proc/sys/kernel/yama/ptrace_scope")?.trim() === "3")
    problems.push("kernel.yama.ptrace_scope is 3 (ptrace disabled until reboot): boot with it at 2 or lower");
  return problems;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const problems = preflight();
  for (const p of problems) console.error(`xsplice tests: ${p}`);
  process.exit(problems.length > 0 ? 1 : 0);
}
