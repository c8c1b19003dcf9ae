/**
 * Resource behaviour over time and under concurrency: 1,000 upload/unload
 * cycles leave no mapping and no memory behind; two xsplice processes racing
 * on one target serialise (the seize is the lock) and both succeed.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { list } from "../../../src/core/api.ts";
import { unloadPayload, uploadPayload } from "../../../src/core/loader.ts";
import { readTargetRegistry } from "../../../src/core/registry/remote.ts";
import { openTarget } from "../../../src/core/session.ts";
import { readMaps } from "../../../src/process/maps.ts";
import { startTarget, type Target } from "../../helpers/target.ts";
import { cli, generated, payload, source, TARGET } from "./_fixtures.ts";

function rssKb(pid: number): number {
  return Number(/^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"))![1]);
}

describe("1,000 upload/unload cycles", () => {
  let t: Target;
  before(async () => {
    t = await startTarget(TARGET);
  });
  after(async () => {
    await t.kill();
  });

  it("leave the number of mappings and the RSS where they were", () => {
    const bytes = readFileSync(payload([source("probes.c")]));
    // The first cycle creates the registry; measure from after it.
    uploadPayload(t.pid, "cycle", bytes);
    let s = openTarget(t.pid);
    try {
      unloadPayload(s, "cycle");
    } finally {
      s.close();
    }
    const maps0 = readMaps(t.pid).length;
    const rss0 = rssKb(t.pid);
    const t0 = performance.now();
    for (let i = 0; i < 1000; i++) {
      uploadPayload(t.pid, "cycle", bytes);
      s = openTarget(t.pid);
      try {
        unloadPayload(s, "cycle");
      } finally {
        s.close();
      }
    }
    const ms = performance.now() - t0;
    const maps1 = readMaps(t.pid).length;
    const rss1 = rssKb(t.pid);
    assert.equal(maps1, maps0, "no mapping left behind");
    // The registry's two slots are touched alternately: its pages are resident already.
    assert.ok(rss1 - rss0 <= 64, `RSS grew by ${rss1 - rss0} kB`);
    assert.deepEqual(readTargetRegistry(t.pid)!.state.payloads, []);
    assert.equal(readTargetRegistry(t.pid)!.state.version, 2002);
    console.log(
      `# 1000 cycles: ${ms.toFixed(0)} ms (${(ms / 1000).toFixed(2)} ms/cycle), RSS ${rss0}->${rss1} kB`,
    );
  });
});

describe("two xsplice processes racing on one target", () => {
  let t: Target;
  before(async () => {
    t = await startTarget(TARGET);
  });
  after(async () => {
    await t.kill();
  });

  it("both uploads succeed, one after the other; the registry holds both", async () => {
    const a = generated(10);
    const b = generated(11);
    const [ra, rb] = await Promise.all([
      cli(["upload", String(t.pid), "race-a", a, "--json"]),
      cli(["upload", String(t.pid), "race-b", b, "--json"]),
    ]);
    assert.equal(ra.status, 0, ra.stderr + ra.stdout);
    assert.equal(rb.status, 0, rb.stderr + rb.stdout);
    const r = await list(t.pid);
    assert.deepEqual(r.payloads.map((p) => p.name).sort(), ["race-a", "race-b"]);
    assert.equal(r.version, 2, "two commits, none lost");
    // Each one's regions are its own and mapped.
    const st = readTargetRegistry(t.pid)!.state;
    const maps = readMaps(t.pid);
    const starts = st.payloads.flatMap((p) => p.regions.map((x) => BigInt(x.addr)));
    assert.equal(new Set(starts).size, starts.length);
    for (const s of starts) assert.ok(maps.some((m) => m.start === s));
  });

  it("a run that finds the target held by another xsplice waits for it, then succeeds", async () => {
    const holder = await hold(t.pid, 1500);
    try {
      const t0 = performance.now();
      const r = await cli(["upload", String(t.pid), "after-wait", generated(12), "--json"]);
      assert.equal(r.status, 0, r.stderr + r.stdout);
      assert.ok(performance.now() - t0 >= 1000, "it waited for the holder");
    } finally {
      await holder.done;
    }
    assert.ok((await list(t.pid)).payloads.some((p) => p.name === "after-wait"));
  });

  it("an action on a payload another run is acting on is EBUSY at once (exit 2)", async () => {
    const holder = await hold(t.pid, 3000, "race-a");
    try {
      const t0 = performance.now();
      const r = await cli(["unload", String(t.pid), "race-a"]);
      assert.equal(r.status, 2, r.stderr);
      assert.match(r.stderr, /^xsplice: unload race-a in \d+: EBUSY: an action on 'race-a' is in progress/);
      assert.ok(performance.now() - t0 < 2600, "not queued behind the holder");
    } finally {
      await holder.done;
    }
    assert.equal((await list(t.pid)).payloads.find((p) => p.name === "race-a")?.rc, 0);
  });
});

/** Start hold-session.ts on `pid`; resolves once it holds the target. */
async function hold(pid: number, ms: number, name?: string): Promise<{ done: Promise<void> }> {
  const child = spawn(
    process.execPath,
    ["--import", "tsx", HOLD, String(pid), String(ms), ...(name ? [name] : [])],
    {
      stdio: ["ignore", "pipe", "inherit"],
    },
  );
  const done = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  await new Promise<void>((resolve, reject) => {
    child.stdout!.setEncoding("utf8").on("data", (d: string) => {
      if (d.includes("held")) resolve();
    });
    child.once("exit", (code) => reject(new Error(`holder exited with ${code}`)));
  });
  return { done };
}

const HOLD = join(dirname(fileURLToPath(import.meta.url)), "../../fixtures/upload/hold-session.ts");
