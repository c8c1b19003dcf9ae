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
import { readFileSync, statSync } from "node:fs";
import { after, before, test } from "node:test";
import { createBuildIdCache } from "../../src/agent/build-id.ts";
import { libraryMappings } from "../../src/agent/library-targets.ts";
import { entryOf } from "../../src/agent/start-held.ts";
import { PARK_LOOP } from "../../src/arch/host.ts";
import { readElf } from "../../src/elf/index.ts";
import { hexBytes } from "../../src/hex.ts";
import { readPayload } from "../../src/payload/index.ts";
import { readMaps } from "../../src/process/maps.ts";
import { readMemory } from "../../src/process/memory.ts";
import { tempDir } from "../cli/_run.ts";
import { startTarget, type Target } from "../helpers/target.ts";
import { runOnce, type SpawnedAgent, until } from "./_agent.ts";
import { agentPayload } from "./_fixture.ts";
import { endLibraryTest, FIXED, libraryAgent, libraryFixtures, mapsFile, OLD, threads } from "./_library.ts";

let lib: string;
let user: string;
let opener: string;
let agent: SpawnedAgent | undefined;
let serving: Target | undefined;
const targets: Target[] = [];
const tmp = tempDir("libgate");

async function value(t: Target): Promise<number> {
  const from = t.lines.length;
  t.send("x");
  const m = /^value=(-?\d+) /.exec(await t.waitFor(/^value=/, { from }));
  return Number(m?.[1]);
}

before(async () => {
  ({ lib, user, opener } = libraryFixtures());
  // A running process that maps the library: where the agent finds the library target's inode.
  serving = await startTarget(user);
  targets.push(serving);
  assert.match(serving.readyLine, new RegExp(`first=${OLD}$`));
  const started = await libraryAgent(tmp.dir, lib);
  const a = started.agent;
  agent = a;
  started.installFix();
  await until("the running process patched", async () => (await value(serving!)) === FIXED, a);
  await until("the library marked", () => /library gate: marked /.test(a.stderr()), a, 10_000).catch((e) => {
    throw new Error(`${e.message}: ${a.stderr()}`);
  });
});

after(() => endLibraryTest(agent, targets, tmp));

test("a library target mapped in a running process is found through that process (payloads without file hints)", () => {
  const target = hexBytes(readPayload(readFileSync(agentPayload("lib-fix.c", lib))).target);
  const found = libraryMappings(
    serving!.pid,
    readMaps(serving!.pid),
    new Set([target]),
    createBuildIdCache(),
    new Set(),
  );
  assert.equal(found.length, 1);
  const m = found[0]!.mark;
  assert.ok("pid" in m && m.pid === serving!.pid && m.buildId === target);
  // And never the process's own program, though it has a build-id too.
  const exe = hexBytes(readElf(readFileSync(user)).buildId()!);
  assert.deepEqual(
    libraryMappings(serving!.pid, readMaps(serving!.pid), new Set([exe]), createBuildIdCache(), new Set()),
    [],
  );
});

test("20 new processes that link the library at start-up run only the patched version", async () => {
  for (let i = 0; i < 20; i++)
    assert.equal(await runOnce(user), `first=${FIXED} old_calls=0\n`, `start ${i}: ${agent?.stderr()}`);
});

test("a library dlopened after the agent started answers patched on the first call after dlopen", async () => {
  const t = await startTarget(opener, [lib]);
  targets.push(t);
  assert.equal(mapsFile(t.pid, lib), false, "the library is not mapped before dlopen");
  const from = t.lines.length;
  t.send("go");
  const line = await t.waitFor(/^(first=|dlopen:)/, { from });
  assert.equal(line, `first=${FIXED} old_calls=0`, agent?.stderr());
  assert.equal(mapsFile(t.pid, lib), true);
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
