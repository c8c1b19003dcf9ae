/**
 * What a new user meets first (issue #13.5, SPEC §10): `--version`, an unknown
 * option's message, a missing source for `build`, a program given where a payload
 * belongs, and the hint when the kernel refuses access to a process. Each message
 * is one line from bin/xsplice.js, with the SPEC's errno and exit status 1.
 */
import assert from "node:assert/strict";
import { type SpawnSyncOptions, spawnSync } from "node:child_process";
import { chmodSync, existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { isPtraceRefusal, ptraceFacts, ptraceHint } from "../../src/cli/permission-hint.ts";
import { XspliceError } from "../../src/errors.ts";
import { callError } from "../../src/process/libc.ts";
import { actionsTarget } from "../core/actions/_hand.ts";
import { portableCli } from "../helpers/bundle.ts";
import { compileC, FIXTURES, ROOT } from "../helpers/cc.ts";
import { startTarget } from "../helpers/target.ts";
import { tempDir } from "./_run.ts";

function xsplice(
  args: string[],
  opts: SpawnSyncOptions = {},
  bin: string[] = [join(ROOT, "bin", "xsplice.js")],
): { status: number; stdout: string; stderr: string } {
  const env = { ...process.env };
  delete env["XSPLICE_POLICY"];
  const r = spawnSync(process.execPath, [...bin, ...args], {
    encoding: "utf8",
    env,
    ...opts,
  });
  return { status: r.status ?? -1, stdout: String(r.stdout), stderr: String(r.stderr) };
}

/** One line on stderr, nothing on stdout. */
function oneLine(r: { stdout: string; stderr: string }): string {
  assert.equal(r.stdout, "");
  assert.match(r.stderr, /^[^\n]+\n$/);
  return r.stderr.trimEnd();
}

const tmp = tempDir("ux");
after(() => tmp.remove());

test("--version and -V print the package version", () => {
  const { version } = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { version: string };
  for (const flag of ["--version", "-V"]) {
    const r = xsplice([flag]);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, `xsplice ${version}\n`);
  }
});

test("an unknown option is named with balanced quotes", () => {
  const r = xsplice(["load", "-5"]);
  assert.equal(r.status, 1);
  const line = oneLine(r);
  assert.match(
    line,
    /^xsplice: load: EINVAL: unknown option '-5' \(.*'--'.*\); usage: xsplice load PID FILE /,
  );
  for (const q of ["'", '"', "`"]) assert.equal(line.split(q).length % 2, 1, `unbalanced ${q} in: ${line}`);
  assert.equal(
    (line.match(/\(/g) ?? []).length,
    (line.match(/\)/g) ?? []).length,
    `unbalanced () in: ${line}`,
  );
});

test("build names a missing source as ENOENT before running the compiler", () => {
  // A compiler that leaves a mark when it runs: it must not.
  const mark = join(tmp.dir, "cc-ran");
  const cc = join(tmp.dir, "cc");
  writeFileSync(cc, `#!/bin/sh\ntouch ${mark}\nexec cc "$@"\n`);
  chmodSync(cc, 0o755);
  const missing = join(tmp.dir, "nonexistent.c");
  const args = [
    "build",
    missing,
    "--target",
    actionsTarget(true),
    "-o",
    join(tmp.dir, "x.xsplice"),
    "--cc",
    cc,
  ];
  const r = xsplice(args);
  assert.equal(r.status, 1);
  assert.equal(oneLine(r), `xsplice: build ${missing}: ENOENT: source ${missing}: no such file`);
  const j = xsplice([...args, "--json"]);
  assert.deepEqual(JSON.parse(j.stdout), {
    error: "ENOENT",
    errno: 2,
    message: `source ${missing}: no such file`,
  });
  assert.equal(existsSync(mark), false, "the compiler ran");
  // The same compiler does run for a source that exists (the mark is a real probe).
  const ok = xsplice([
    "build",
    join(FIXTURES, "actions", "fix.c"),
    "--target",
    actionsTarget(true),
    "-o",
    join(tmp.dir, "ok.xsplice"),
    "--cc",
    cc,
  ]);
  assert.equal(ok.status, 0, ok.stderr);
  assert.equal(existsSync(mark), true);
});

describe("a linked ELF file given as a payload", () => {
  const exe = actionsTarget(true);
  const so = compileC({ sources: ["actions/fix.c"], kind: "shared" });
  for (const [kind, file] of [
    ["an executable", exe],
    ["a shared object", so],
  ] as const) {
    test(`${kind}: inspect, upload, load and sign say what it is (EOPNOTSUPP)`, () => {
      const why = `${file} is an executable (or shared object), not a payload: build one with xsplice build/make`;
      const pid = String(process.pid);
      for (const [args, op] of [
        [["inspect", file], `inspect ${file}`],
        [["upload", pid, "fix", file], `upload fix in ${pid}`],
        [["load", pid, file, "--name", "fix"], `load fix in ${pid}`],
        [["sign", file, "--key", join(tmp.dir, "none.pem"), "-o", join(tmp.dir, "out")], `sign ${file}`],
      ] as const) {
        const r = xsplice([...args]);
        assert.equal(r.status, 1, r.stderr);
        assert.equal(oneLine(r), `xsplice: ${op}: EOPNOTSUPP: ${why}`);
      }
      const j = xsplice(["inspect", file, "--json"]);
      assert.deepEqual(JSON.parse(j.stdout), { error: "EOPNOTSUPP", errno: 95, message: why });
    });
  }
});

describe("EPERM from the kernel comes with a hint", () => {
  test("reading /proc/PID/maps of another user's process, as nobody", async (t) => {
    if (process.getuid?.() !== 0) {
      t.skip("needs root, to run xsplice as another user (nobody) against a process of root's");
      return;
    }
    const target = await startTarget(actionsTarget(true), ["1"]);
    // nobody may not read a checkout inside a private directory (a `mktemp -d` clone): run a copy.
    const cli = portableCli();
    try {
      const pid = target.pid;
      const r = xsplice(["get", String(pid), "fix"], { uid: 65534, gid: 65534, cwd: "/" }, cli.args);
      assert.equal(r.status, 1);
      const hint = ptraceHint({ ...ptraceFacts(), uid: 65534, capSysPtrace: false });
      assert.equal(
        oneLine(r),
        `xsplice: get fix in ${pid}: EPERM: not allowed to read /proc/${pid}/maps (${hint})`,
      );
      assert.match(hint, /^needs root with CAP_SYS_PTRACE.*; this run: uid 65534/);
    } finally {
      cli.dispose();
      await target.kill();
    }
  });

  test("the hint follows Yama's modes and this run's uid and capability", () => {
    const cases: [Parameters<typeof ptraceHint>[0], string][] = [
      [
        { uid: 1000, capSysPtrace: false, ptraceScope: undefined },
        "needs root with CAP_SYS_PTRACE, or the process's owner; this run: uid 1000",
      ],
      [
        { uid: 1000, capSysPtrace: false, ptraceScope: 0 },
        "needs root with CAP_SYS_PTRACE, or the process's owner; this run: uid 1000, ptrace_scope 0",
      ],
      [
        { uid: 1000, capSysPtrace: false, ptraceScope: 1 },
        "needs root with CAP_SYS_PTRACE, or the process's owner with kernel.yama.ptrace_scope 0; this run: uid 1000, ptrace_scope 1",
      ],
      [
        { uid: 1000, capSysPtrace: false, ptraceScope: 2 },
        "needs root with CAP_SYS_PTRACE; this run: uid 1000, ptrace_scope 2",
      ],
      [
        { uid: 0, capSysPtrace: false, ptraceScope: 1 },
        "needs root with CAP_SYS_PTRACE, or the process's owner with kernel.yama.ptrace_scope 0; this run: uid 0, without CAP_SYS_PTRACE, ptrace_scope 1",
      ],
      [
        { uid: 0, capSysPtrace: true, ptraceScope: undefined },
        "this run is root with CAP_SYS_PTRACE: a security module (SELinux, AppArmor) or the process's user namespace refuses it",
      ],
      [
        { uid: 0, capSysPtrace: true, ptraceScope: 3 },
        "kernel.yama.ptrace_scope 3 forbids attaching to any process until reboot",
      ],
    ];
    for (const [facts, hint] of cases) assert.equal(ptraceHint(facts), hint, JSON.stringify(facts));
  });

  test("only a refused attach or /proc read gets it", () => {
    const EPERM = 1;
    assert.equal(isPtraceRefusal(callError("ptrace(PTRACE_SEIZE)", EPERM, 42)), true);
    assert.equal(isPtraceRefusal(new XspliceError("EPERM", "not allowed to read /proc/42/maps")), true);
    assert.equal(isPtraceRefusal(callError("ptrace(PTRACE_POKEDATA)", EPERM, 42)), false);
    assert.equal(isPtraceRefusal(new XspliceError("EPERM", "payload fix: hook refused the apply")), false);
    assert.equal(isPtraceRefusal(new XspliceError("ESRCH", "not allowed to read /proc/42/maps")), false);
  });
});
