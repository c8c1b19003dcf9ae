/**
 * The compiled command line as a user gets it (issue #13, SPEC §10): the package
 * `npm pack` makes, run with `NODE_OPTIONS` unset. Every command runs once from the
 * packed copy, extracted where no tsx can be found (its one runtime dependency,
 * koffi, linked from this checkout), so a command that needed tsx at run time
 * fails. Which runs load koffi is read from the dynamic loader's own log
 * (`LD_DEBUG=files`): `--help`, `--version`, `build`, `inspect` and `sign` must not,
 * a command that seizes the target must (which shows the probe sees it).
 * Also the PATH route the README gives: `npm install -g` of the tarball into a
 * temporary prefix, then `PREFIX/bin/xsplice`.
 */
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { mkdirSync, readdirSync, readFileSync, symlinkSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { commands } from "../../src/cli/commands.ts";
import { actionsTarget } from "../core/actions/_hand.ts";
import { callOld, oldFormula } from "../core/actions/_target.ts";
import { FIXTURES, ROOT } from "../helpers/cc.ts";
import { startTarget, type Target } from "../helpers/target.ts";
import { opensslKeyPair, tempDir } from "./_run.ts";

const VERSION = (JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { version: string }).version;

/** An environment without NODE_OPTIONS (nothing may preload a loader) and with `extra`. */
function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, ...extra };
  delete env["NODE_OPTIONS"];
  delete env["XSPLICE_POLICY"];
  return env;
}

const tmp = tempDir("compiled");
after(() => tmp.remove());
let tarball = "";

before(() => {
  // What a user installs: `npm pack` runs `prepare` (the build) and keeps the `files` of package.json.
  const r = spawnSync("npm", ["pack", "--silent", "--pack-destination", tmp.dir], {
    cwd: ROOT,
    encoding: "utf8",
    env: cleanEnv(),
  });
  assert.equal(r.status, 0, r.stderr);
  const name = r.stdout.trim().split("\n").pop() ?? "";
  tarball = join(tmp.dir, name);
  assert.match(name, /^xsplice-.*\.tgz$/);
});

describe("the packed CLI, run without tsx", () => {
  let pkg = "";
  let exe = "";
  let target: Target | undefined;
  let n = 0;
  const ran = new Set<string>();

  before(() => {
    const r = spawnSync("tar", ["xzf", tarball, "-C", tmp.dir], { encoding: "utf8" });
    assert.equal(r.status, 0, r.stderr);
    pkg = join(tmp.dir, "package");
    mkdirSync(join(pkg, "node_modules"));
    symlinkSync(join(ROOT, "node_modules", "koffi"), join(pkg, "node_modules", "koffi"));
    // The premise of every test below: tsx cannot be resolved from the package.
    assert.throws(() => createRequire(join(pkg, "dist", "cli.cjs")).resolve("tsx"), /Cannot find module/);
    mkdirSync(join(tmp.dir, "ld"));
    exe = actionsTarget(true);
  });
  after(async () => {
    await target?.kill();
  });

  /** Run the packed `xsplice ARGS`; `koffi` says whether the loader mapped koffi's addon. */
  function xsplice(
    ...args: string[]
  ): Promise<{ status: number; stdout: string; stderr: string; koffi: boolean }> {
    const id = `run${++n}`;
    const log = join(tmp.dir, "ld", id);
    if (args[0] !== undefined) ran.add(args[0]);
    return new Promise((resolve) => {
      const c = spawn(process.execPath, [join(pkg, "bin", "xsplice.js"), ...args], {
        stdio: ["ignore", "pipe", "pipe"],
        env: cleanEnv({ LD_DEBUG: "files", LD_DEBUG_OUTPUT: log }),
      });
      let stdout = "";
      let stderr = "";
      c.stdout.setEncoding("utf8").on("data", (d: string) => {
        stdout += d;
      });
      c.stderr.setEncoding("utf8").on("data", (d: string) => {
        stderr += d;
      });
      c.on("close", (code) => {
        // ld.so writes LOG.PID for the CLI and for each program it runs (cc, ld, objcopy).
        const logs = readdirSync(join(tmp.dir, "ld")).filter((f) => f.startsWith(`${id}.`));
        const koffi = logs.some((f) => readFileSync(join(tmp.dir, "ld", f), "utf8").includes("koffi.node"));
        resolve({ status: code ?? -1, stdout, stderr, koffi });
      });
    });
  }

  test("--version, --help, build, inspect and sign work without koffi", async () => {
    for (const flag of ["--version", "-V"]) {
      const v = await xsplice(flag);
      assert.equal(v.status, 0, v.stderr);
      assert.equal(v.stdout, `xsplice ${VERSION}\n`);
      assert.equal(v.koffi, false, `${flag} loaded koffi`);
    }
    const help = await xsplice("--help");
    assert.equal(help.status, 0, help.stderr);
    for (const c of commands) assert.ok(help.stdout.includes(`  ${c.usage}`), `--help lacks ${c.name}`);
    assert.equal(help.koffi, false, "--help loaded koffi");

    const payload = join(tmp.dir, "fix.xsplice");
    const built = await xsplice("build", join(FIXTURES, "actions", "fix.c"), "--target", exe, "-o", payload);
    assert.equal(built.status, 0, built.stderr);
    assert.match(built.stdout, /^built .*fix\.xsplice$/m);
    assert.equal(built.koffi, false, "build loaded koffi");

    const shown = await xsplice("inspect", payload, "--json");
    assert.equal(shown.status, 0, shown.stderr);
    assert.deepEqual(
      (JSON.parse(shown.stdout) as { funcs: { name: string }[] }).funcs.map((f) => f.name),
      ["old_fn"],
    );
    assert.equal(shown.koffi, false, "inspect loaded koffi");

    const key = opensslKeyPair(tmp.dir, "signing", "ed25519");
    const signed = await xsplice(
      "sign",
      payload,
      "--key",
      key.priv,
      "-o",
      join(tmp.dir, "fix.signed.xsplice"),
    );
    assert.equal(signed.status, 0, signed.stderr);
    assert.equal(signed.koffi, false, "sign loaded koffi");
  });

  test("every process command, on a live target", async () => {
    target = await startTarget(exe, ["1"]);
    const pid = String(target.pid);
    const payload = join(tmp.dir, "fix.xsplice");
    const signed = join(tmp.dir, "fix.signed.xsplice");
    const ok = async (...args: string[]) => {
      const r = await xsplice(...args);
      assert.equal(r.status, 0, `xsplice ${args.join(" ")}: ${r.stderr}`);
      return r;
    };
    const state = async (name: string) =>
      (JSON.parse((await ok("get", pid, name, "--json")).stdout) as { state: string }).state;

    const up = await ok("upload", pid, "fix", payload);
    assert.equal(up.koffi, true, "upload seized the target without koffi: the probe is blind");
    assert.equal(await state("fix"), "CHECKED");
    await ok("apply", pid, "fix");
    assert.equal(await callOld(target, 5), oldFormula(5n) + 1000n);
    const listed = JSON.parse((await ok("list", pid, "--json")).stdout) as { payloads: { name: string }[] };
    assert.deepEqual(
      listed.payloads.map((p) => p.name),
      ["fix"],
    );
    await ok("revert", pid, "fix");
    assert.equal(await callOld(target, 5), oldFormula(5n));
    await ok("replace", pid, "fix");
    assert.equal(await state("fix"), "APPLIED");
    await ok("revert", pid, "fix");
    await ok("unload", pid, "fix");
    await ok("load", pid, signed, "--name", "fix2");
    assert.equal(await callOld(target, 5), oldFormula(5n) + 1000n);
    await ok("revert", pid, "fix2");
    await ok("unload", pid, "fix2");
    assert.equal(await callOld(target, 5), oldFormula(5n));
    // --all fans out to worker processes, which must start from the package's own bundle too.
    await ok("load", "--all", signed, "--name", "fix3", "-j", "1");
    assert.equal(await callOld(target, 5), oldFormula(5n) + 1000n);
    await ok("revert", "--all", "fix3");
    await ok("unload", "--all", "fix3");
    assert.equal(await callOld(target, 5), oldFormula(5n));
  });

  test("every other command in the table at least parses and prints its usage", async () => {
    for (const c of commands) {
      if (ran.has(c.name)) continue;
      const r = await xsplice(c.name, "--help");
      assert.equal(r.status, 0, `${c.name} --help: ${r.stderr}`);
      assert.equal(r.stdout, `usage: xsplice ${c.usage}\n${c.summary}\n`);
    }
  });
});

test("npm install -g of the tarball puts a working xsplice on PATH", async (t) => {
  const prefix = join(tmp.dir, "prefix");
  // koffi comes from the registry, or npm's cache once a run has fetched it.
  const r = spawnSync(
    "npm",
    ["install", "-g", tarball, "--prefix", prefix, "--prefer-offline", "--no-audit", "--no-fund"],
    { encoding: "utf8", env: cleanEnv() },
  );
  if (r.status !== 0 && /ENOTFOUND|EAI_AGAIN|ECONNREFUSED|ETIMEDOUT|ENOTCACHED|ENETUNREACH/.test(r.stderr)) {
    t.skip(`the npm registry cannot be reached: ${r.stderr.split("\n")[0]}`);
    return;
  }
  assert.equal(r.status, 0, r.stderr);
  const env = cleanEnv({ PATH: `${join(prefix, "bin")}:${process.env["PATH"] ?? ""}` });
  const v = spawnSync("xsplice", ["--version"], { encoding: "utf8", env });
  assert.equal(v.status, 0, v.stderr);
  assert.equal(v.stdout, `xsplice ${VERSION}\n`);
  // The installed copy carries include/xsplice.h for build, and a working koffi for load.
  const payload = join(tmp.dir, "installed.xsplice");
  const exe = actionsTarget(true);
  const b = spawnSync(
    "xsplice",
    ["build", join(FIXTURES, "actions", "fix.c"), "--target", exe, "-o", payload],
    {
      encoding: "utf8",
      env,
    },
  );
  assert.equal(b.status, 0, b.stderr);
  const target = await startTarget(exe, ["1"]);
  try {
    const l = spawnSync("xsplice", ["load", String(target.pid), payload], { encoding: "utf8", env });
    assert.equal(l.status, 0, l.stderr);
    assert.equal(await callOld(target, 3), oldFormula(3n) + 1000n);
  } finally {
    await target.kill();
  }
});
