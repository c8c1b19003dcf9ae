/**
 * Issue #11 items 1–6, one reproducing test each: the exact moment the review
 * killed xsplice (or made the target re-exec) is reached with a pause point
 * (`XSPLICE_TEST_PAUSE_AT`, src/process/pause-point.ts) in a victim library
 * user, which is then SIGKILLed there; what the old code got wrong is then
 * asserted not to happen. Each test first asserts that the kill landed where
 * it should (the half-done state the next run finds), so a pause point that
 * moved would fail it rather than pass it vacuously.
 */
import assert from "node:assert/strict";
import { readdirSync, readFileSync, readlinkSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { performAction } from "../../../src/core/execute.ts";
import { uploadPayload } from "../../../src/core/loader.ts";
import { findRegistry, readTargetRegistry } from "../../../src/core/registry/remote.ts";
import { withTarget } from "../../../src/core/session.ts";
import { XspliceError } from "../../../src/errors.ts";
import { findInjectPage } from "../../../src/process/inject-page.ts";
import { mappedExactly, readMaps } from "../../../src/process/maps.ts";
import { command, ensure, payloadFiles, runPaused } from "../../fixtures/hardening/drive.ts";
import {
  callTarget,
  hardeningPayload,
  hardeningTarget,
  leakedMappings,
  payloadSet,
  type Rig,
  rigOf,
  startRig,
  stoppedOrTraced,
  targetStatus,
  VictimPool,
  verifyTarget,
} from "../../fixtures/hardening/rig.ts";
import { nodeCommand } from "../../helpers/bundle.ts";
import { compileC, ROOT } from "../../helpers/cc.ts";
import { prng } from "../../helpers/prng.ts";
import { startTarget } from "../../helpers/target.ts";

const victim = fileURLToPath(new URL("../../fixtures/hardening/victim.ts", import.meta.url));
const SEED = Number(process.env["XSPLICE_TEST_SEED"] ?? Date.now() % 1_000_000);
const EXEC_ROUNDS = Number(process.env["XSPLICE_EXEC_ROUNDS"] ?? 20);

async function until<T>(what: string, probe: () => T | undefined, ms = 10_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = probe();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 1));
  }
}

/**
 * The main thread is inside execve: with xsplice holding the process and paused, the exec waits
 * there (in de_thread) until the tracer reaps the other threads, then stops at its exec event.
 */
function inExec(pid: number): true | undefined {
  try {
    return readFileSync(`/proc/${pid}/syscall`, "utf8").startsWith("59 ") ? true : undefined;
  } catch {
    return undefined;
  }
}

function descriptorsOn(pid: number, prefix: string): number {
  return readdirSync(`/proc/${pid}/fd`).filter((fd) => {
    try {
      return readlinkSync(`/proc/${pid}/fd/${fd}`).startsWith(prefix);
    } catch {
      return false;
    }
  }).length;
}

function alive(pid: number): boolean {
  try {
    return !/\) [ZX] /.test(readFileSync(`/proc/${pid}/stat`, "utf8"));
  } catch {
    return false;
  }
}

function errnoOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    if (err instanceof XspliceError) return err.errno;
    throw err;
  }
  return "no error";
}

describe("issue #11 items 1-6: the crash windows the review found, reproduced", { timeout: 600_000 }, () => {
  const exe = hardeningTarget();
  const payloads = payloadSet(exe);
  let pool: VictimPool;
  const rigs: Rig[] = [];
  const rigFor = async (e = exe, p = payloads): Promise<Rig> => {
    const r = await startRig(e, p);
    rigs.push(r);
    return r;
  };

  before(async () => {
    pool = new VictimPool(await nodeCommand(victim));
  });
  after(async () => {
    await pool?.close();
    for (const r of rigs) await r.t.kill();
  });

  for (const v of [
    { pie: true, cmd: "exec", what: "a PIE re-executing itself" },
    {
      pie: false,
      cmd: "exec-noaslr",
      what: "non-PIE without ASLR: the identical image at the same addresses",
    },
  ])
    it(`item 1: exec during an apply (${v.what}) is ESRCH, nothing written into the new program`, async () => {
      const e = hardeningTarget(v.pie);
      const ps = payloadSet(e);
      const rig = await rigFor(e, ps);
      ensure(rig, { m1: "CHECKED", h: "CHECKED" });
      const old = new Map([...rig.funcs].map(([f, x]) => [f, x.addr]));
      const victimRun = await pool.take();
      // Journaled, threads running: the review's runs re-executed here, and the trampolines went
      // into the new image (same bytes before, same addresses without ASLR).
      victimRun.send({ ...command(rig, "apply", "m1"), pause: "action:journaled" });
      const p = await victimRun.next();
      assert.equal(p.line.split(" ")[1], "action:journaled");
      const from = rig.t.lines.length;
      rig.t.send(v.cmd);
      await until("the exec", () => inExec(rig.t.pid));
      victimRun.resume();
      const r = await victimRun.next();
      assert.match(r.line, /^error ESRCH .*execve/, "the action is abandoned with ESRCH");
      pool.give(victimRun);
      await rig.t.waitFor(/^ready .* execs=1$/, { from });
      // The new program: every function exactly the file's (rigOf checks), no registry of ours.
      const fresh = rigOf(rig.t, e, ps);
      if (!v.pie)
        for (const [f, x] of fresh.funcs) assert.equal(x.addr, old.get(f), `${f} at the same address`);
      assert.equal(findRegistry(rig.t.pid), undefined, "no registry in the new program");
      assert.equal(findInjectPage(rig.t.pid).kind, "none", "no inject page in the new program");
      assert.deepEqual(stoppedOrTraced(rig.t.pid), []);
      const [f1] = await callTarget(rig.t, 7);
      assert.equal(f1, 7n * 31n + 7n, "the new program runs its own code");
      assert.equal((await targetStatus(rig.t))["errors"], 0);
      // And it can be patched like any process.
      ensure(fresh, { m1: "APPLIED", h: "CHECKED" });
      await verifyTarget(fresh, "after the exec, patched");
    });

  it(`item 1: ${EXEC_ROUNDS} re-execs at seeded random moments of random actions: the target never crashes`, async () => {
    console.log(`# seed ${SEED} (XSPLICE_TEST_SEED=${SEED} replays it)`);
    const rand = prng(SEED);
    const rig = await rigFor();
    let cur = rig;
    for (let round = 1; round <= EXEC_ROUNDS; round++) {
      ensure(cur, { m1: "CHECKED", h: "CHECKED", m3: "CHECKED" });
      const v = await pool.take();
      const from = cur.t.lines.length;
      try {
        v.send({
          op: "loop",
          pid: cur.t.pid,
          files: payloadFiles(payloads),
          seed: Math.floor(rand() * 2 ** 31),
        });
        assert.equal((await v.next()).line, "go");
        cur.t.send(`exec-in ${Math.floor(rand() * 20)}`);
        await cur.t.waitFor(new RegExp(`^ready .* execs=${round}$`), { from, timeoutMs: 20_000 });
      } finally {
        await v.kill();
      }
      assert.ok(alive(cur.t.pid), `round ${round}: the target died`);
      // The new image may have been patched by the loop after the exec: checked against its own registry.
      cur = rigOf(cur.t, exe, payloads, { clean: false });
      await verifyTarget(cur, `exec round ${round} (seed ${SEED})`);
    }
  });

  it("item 2: SIGKILL during unload, then apply: the unload is finished, a half-unmapped payload is never applied", async () => {
    const rig = await rigFor();
    ensure(rig, { h: "CHECKED" });
    const regions = withTarget(rig.t.pid, {}, (s) => s.state.payloads.find((p) => p.name === "h")!.regions);
    assert.ok(regions.length >= 2, "the payload has several regions");
    const r = await runPaused(pool, command(rig, "unload", "h"), "unload:unmapped");
    assert.equal(r.kind, "killed");
    // The review's state: one region gone, the others mapped, the record still there.
    const left = readTargetRegistry(rig.t.pid)!.state;
    assert.equal(left.journal?.cmd, "UNLOAD");
    assert.ok(
      left.payloads.some((p) => p.name === "h"),
      "the record is still listed",
    );
    const maps = readMaps(rig.t.pid);
    assert.equal(regions.filter((x) => !mappedExactly(maps, BigInt(x.addr), x.size)).length, 1);
    // The next run finishes the unload; the apply the review saw succeed (and crash the target) is ENOENT.
    assert.equal(
      errnoOf(() => performAction(rig.t.pid, "h", "APPLY")),
      "ENOENT",
    );
    const verdict = await verifyTarget(rig, "after the killed unload");
    assert.equal(verdict.opened.recovered, undefined, "already recovered by the apply's open");
    assert.ok(!verdict.state.payloads.some((p) => p.name === "h"));
    ensure(rig, { h: "APPLIED" });
    await verifyTarget(rig, "uploaded and applied again");
  });

  it("item 3: SIGKILL while the first registry is created: the process stays patchable", async () => {
    const rig = await rigFor();
    const r = await runPaused(pool, command(rig, "upload", "m1"), "registry:mapped");
    assert.equal(r.kind, "killed");
    // The review's state: the registry mapped, its magic still zero.
    assert.notEqual(findRegistry(rig.t.pid), undefined, "the registry mapping exists");
    assert.equal(readTargetRegistry(rig.t.pid), undefined, "readers see no registry yet, not EINVAL");
    await verifyTarget(rig, "after the killed creation");
    assert.equal(descriptorsOn(rig.t.pid, "/memfd:xsplice-registry"), 0, "the creation's descriptor closed");
    ensure(rig, { m1: "APPLIED", h: "APPLIED" });
    assert.notEqual(findRegistry(rig.t.pid), undefined, "one registry (two would be EINVAL)");
    await verifyTarget(rig, "patched after the killed creation");
  });

  for (const point of [
    "inject:running",
    "bootstrap:site",
    "inject-page:memfd",
    "inject-page:sized",
    "inject-page:mapped",
    "inject-page:closed",
    "inject-page:code",
  ])
    it(`item 4: SIGKILL during inject-page creation (${point}) of a first upload: the target lives, nothing is left`, async () => {
      const rig = await rigFor();
      const r = await runPaused(pool, command(rig, "upload", "m1"), point);
      assert.deepEqual(r, { kind: "killed", point });
      assert.ok(alive(rig.t.pid), "the target survived the kill (the old bootstrap died of SIGTRAP)");
      const [f1] = await callTarget(rig.t, 3);
      assert.equal(f1, 3n * 31n + 7n);
      await verifyTarget(rig, `killed at ${point}`); // no descriptor, no half-made page left
      assert.notEqual(findInjectPage(rig.t.pid).kind, "half-made");
      ensure(rig, { m1: "APPLIED" });
      await verifyTarget(rig, `killed at ${point}, then patched`);
    });

  it("item 5: hooks are paired after a kill right after a load hook (examples/hooks): re-applying does not double the effect", async () => {
    const greeter = compileC({
      sources: [join(ROOT, "examples/hooks/greeter.c")],
      kind: "exe",
      flags: [
        "-O2",
        "-g",
        "-fPIE",
        "-pie",
        "-Wl,--build-id",
        "-flive-patching=inline-clone",
        "-fno-omit-frame-pointer",
      ],
      name: "greeter-hardening",
    });
    const file = hardeningPayload(join(ROOT, "examples/hooks/hooks.c"), greeter);
    const t = await startTarget(greeter);
    rigs.push({ t } as Rig);
    const version = async () => {
      const from = t.lines.length;
      t.send("status");
      return Number(/config_version=(-?\d+)/.exec(await t.waitFor(/^status /, { from }))![1]);
    };
    uploadPayload(t.pid, "greet-v2", new Uint8Array(readFileSync(file)));
    const cmd = { op: "apply", pid: t.pid, name: "greet-v2" };
    assert.equal((await runPaused(pool, cmd, "action:hook-returned")).kind, "killed");
    assert.equal(await version(), 101, "the load hook ran before the kill");
    const opened = withTarget(t.pid, {}, (s) => s.opened);
    assert.deepEqual(opened.recovered?.paired, ["'greet-v2' load"], "recovery ran its unload hook");
    assert.equal(await version(), 1, "the hook's effect went with the rolled-back apply");
    performAction(t.pid, "greet-v2", "APPLY");
    assert.equal(await version(), 101, "re-applying migrates once (the review saw 201)");
    performAction(t.pid, "greet-v2", "REVERT");
    assert.equal(await version(), 1);
    // Killed again while recovery runs the pair: the next run must not run it a second time.
    assert.equal((await runPaused(pool, cmd, "action:hook-returned")).kind, "killed");
    assert.equal((await runPaused(pool, { op: "open", pid: t.pid }, "inject:running")).kind, "killed");
    withTarget(t.pid, {}, () => {});
    assert.equal(await version(), 1, "the unload hook ran once (twice gives -99)");
    performAction(t.pid, "greet-v2", "APPLY");
    assert.equal(await version(), 101);
    assert.deepEqual(stoppedOrTraced(t.pid), []);
  });

  for (const point of ["upload:journaled", "upload:mapped", "upload:written"])
    it(`item 6: a killed upload (${point}) leaks no mapping`, async () => {
      const rig = await rigFor();
      ensure(rig, { h: "CHECKED" }); // the registry exists: the upload journals into it
      const r = await runPaused(pool, command(rig, "upload", "m1"), point);
      assert.equal(r.kind, "killed");
      const left = readTargetRegistry(rig.t.pid)!.state;
      assert.equal(left.journal?.cmd, "UPLOAD", "the kill landed inside the upload");
      if (point !== "upload:journaled")
        assert.ok(leakedMappings(rig, left).length > 0, "the review's state: a mapping no record owns");
      const verdict = await verifyTarget(rig, `upload killed at ${point}`); // no leaked mapping
      assert.equal(verdict.opened.recovered?.cmd, "UPLOAD");
      assert.ok(!verdict.state.payloads.some((p) => p.name === "m1"));
      ensure(rig, { h: "CHECKED", m1: "APPLIED" });
      await verifyTarget(rig, `upload killed at ${point}, then uploaded again`);
    });
});
