/**
 * Library targets with the agent running (SPEC §14, issue #14 "for a
 * shared-library target that a process dlopens later, at the dlopen";
 * docs/agent.md "Library targets at start-up and at `dlopen`"): new
 * processes that link the library at start-up, and a process that dlopens it
 * after the agent started, each prove by their own output that only the
 * patched version ran; afterwards nothing is left stopped or traced, and a
 * plain reader of the library (`cat`) is never held.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { copyFileSync, mkdirSync, readdirSync, readFileSync, renameSync, statSync } from "node:fs";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { entryOf } from "../../src/agent/start-held.ts";
import { PARK_LOOP } from "../../src/arch/host.ts";
import { readMemory } from "../../src/process/memory.ts";
import { tempDir } from "../cli/_run.ts";
import { compileC } from "../helpers/cc.ts";
import { startTarget, type Target } from "../helpers/target.ts";
import { type SpawnedAgent, spawnAgent, until } from "./_agent.ts";
import { agentPayload } from "./_fixture.ts";

/** lib_answer(1) unpatched, and with lib-fix.c applied. */
const OLD = 7;
const FIXED = 1007;

/** SPEC §12 flags of a live-patchable object. */
const FLAGS = [
  "-O2",
  "-g",
  "-flive-patching=inline-clone",
  "-fno-omit-frame-pointer",
  "-fcf-protection=full",
  "-Wl,--build-id",
];

let lib: string;
let user: string;
let opener: string;
let agent: SpawnedAgent | undefined;
let serving: Target | undefined;
const targets: Target[] = [];
const tmp = tempDir("libgate");

/** `exe once`'s output (it exits by itself). */
function once(exe: string): Promise<string> {
  return new Promise((resolve, reject) =>
    execFile(exe, ["once"], { timeout: 30_000 }, (err, out) => (err ? reject(err) : resolve(out))),
  );
}

async function value(t: Target): Promise<number> {
  const from = t.lines.length;
  t.send("x");
  const m = /^value=(-?\d+) /.exec(await t.waitFor(/^value=/, { from }));
  return Number(m?.[1]);
}

/** Every thread of `pid`: its TracerPid and state letter. */
function threads(pid: number): { tid: number; tracer: number; state: string }[] {
  return readdirSync(`/proc/${pid}/task`).map((t) => {
    const s = readFileSync(`/proc/${pid}/task/${t}/status`, "utf8");
    return {
      tid: Number(t),
      tracer: Number(/^TracerPid:\s+(\d+)/m.exec(s)?.[1]),
      state: /^State:\s+(\S)/m.exec(s)?.[1] ?? "?",
    };
  });
}

function mapsLib(pid: number): boolean {
  const ino = statSync(lib).ino;
  return readFileSync(`/proc/${pid}/maps`, "utf8")
    .split("\n")
    .some((l) => l.split(/\s+/)[4] === String(ino));
}

before(async () => {
  lib = compileC({ sources: ["agent/libanswer.c"], kind: "shared", flags: FLAGS, name: "libanswer" });
  user = compileC({
    sources: ["agent/lib-user.c"],
    kind: "exe",
    flags: [...FLAGS, "-fPIE", "-pie"],
    libs: [lib],
    name: "lib-user",
  });
  opener = compileC({
    sources: ["agent/lib-dlopen.c"],
    kind: "exe",
    flags: [...FLAGS, "-fPIE", "-pie"],
    libs: ["-ldl", "-lpthread"],
    name: "lib-dlopen",
  });
  const fix = agentPayload("lib-fix.c", lib);
  const dir = join(tmp.dir, "payloads");
  const state = join(tmp.dir, "state");
  mkdirSync(dir);
  mkdirSync(state);
  // A running process that maps the library: where the agent finds the library target's inode.
  serving = await startTarget(user);
  targets.push(serving);
  assert.match(serving.readyLine, new RegExp(`first=${OLD}$`));
  // Its own process group, so that the end can wait for its gate and workers to be gone too.
  agent = spawnAgent(dir, state, [], { ownGroup: true });
  await agent.ready;
  copyFileSync(fix, join(dir, ".lib-fix.tmp"));
  renameSync(join(dir, ".lib-fix.tmp"), join(dir, "lib-fix.xsplice"));
  const a = agent;
  await until("the running process patched", async () => (await value(serving!)) === FIXED, a);
  await until("the library marked", () => /library gate: marked /.test(a.stderr()), a, 10_000).catch((e) => {
    throw new Error(`${e.message}: ${a.stderr()}`);
  });
});

after(async () => {
  try {
    await agent?.stop().catch(() => undefined);
    // Its gate too: a gate whose fanotify reads no event ends must still exit (gate.ts exitWithoutJoin).
    const a = agent;
    if (a)
      await until("the agent's gate and workers gone", () => a.groupLeft().length === 0, undefined, 20_000);
  } finally {
    await Promise.all(targets.map((t) => t.kill()));
    tmp.remove();
  }
});

test("20 new processes that link the library at start-up run only the patched version", async () => {
  for (let i = 0; i < 20; i++)
    assert.equal(await once(user), `first=${FIXED} old_calls=0\n`, `start ${i}: ${agent?.stderr()}`);
});

test("a library dlopened after the agent started answers patched on the first call after dlopen", async () => {
  const t = await startTarget(opener, [lib]);
  targets.push(t);
  assert.equal(mapsLib(t.pid), false, "the library is not mapped before dlopen");
  const from = t.lines.length;
  t.send("go");
  const line = await t.waitFor(/^(first=|dlopen:)/, { from });
  assert.equal(line, `first=${FIXED} old_calls=0`, agent?.stderr());
  assert.equal(mapsLib(t.pid), true);
  // Released: the ELF entry holds its own bytes again, not the park loop.
  const entry = entryOf(t.pid);
  assert.notDeepEqual(readMemory(t.pid, entry, PARK_LOOP.length), PARK_LOOP);
});

test("a plain reader of the library is not held, and nothing is left stopped or traced", async () => {
  const out = await new Promise<Buffer>((resolve, reject) =>
    execFile("cat", [lib], { encoding: "buffer", timeout: 30_000 }, (err, o) =>
      err ? reject(err) : resolve(o),
    ),
  );
  assert.equal(out.length, statSync(lib).size);
  assert.ok(targets.length >= 2);
  for (const t of targets) {
    for (const th of threads(t.pid)) {
      assert.equal(th.tracer, 0, `pid ${t.pid} tid ${th.tid} traced`);
      assert.notEqual(th.state, "t", `pid ${t.pid} tid ${th.tid} in a trace stop`);
      assert.notEqual(th.state, "T", `pid ${t.pid} tid ${th.tid} stopped`);
    }
  }
  assert.equal(agent?.stderr().match(/library gate: pid|exec gate: pid/g), null, agent?.stderr());
});
