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
import { XSPLICE_BIN, type XspliceRun } from "../../../examples/lib/xsplice.ts";
import { list } from "../../../src/core/api.ts";
import { unloadPayload, uploadPayload } from "../../../src/core/loader.ts";
import { readTargetRegistry } from "../../../src/core/registry/remote.ts";
import { openTarget } from "../../../src/core/session.ts";
import { readMaps } from "../../../src/process/maps.ts";
import { startTarget, type Target } from "../../helpers/target.ts";
import { waitUntil } from "../../helpers/wait.ts";
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
    const holder = await hold(t.pid);
    const cli = startCli(["upload", String(t.pid), "after-wait", generated(12), "--json"]);
    try {
      // It has come as far as the target (koffi loaded) and waits (its main thread asleep in sleepSync's
      // futex): the holder still holds, so it can only be waiting for it. Then the holder lets go.
      await waitUntil("the second run to wait for the holder", () => cli.exited || waitingInFutex(cli.pid));
      assert.ok(!cli.exited, "still running while the target is held");
      await holder.release();
      const r = await cli.run;
      assert.equal(r.status, 0, r.stderr + r.stdout);
    } finally {
      await holder.release();
      cli.kill();
    }
    assert.ok((await list(t.pid)).payloads.some((p) => p.name === "after-wait"));
  });

  it("an action on a payload another run is acting on is EBUSY at once (exit 2)", async () => {
    const holder = await hold(t.pid, "race-a");
    try {
      // The holder holds until told: a run that queued behind it would not end before the release.
      const r = await startCli(["unload", String(t.pid), "race-a"]).run;
      assert.equal(r.status, 2, r.stderr);
      assert.match(r.stderr, /^xsplice: unload race-a in \d+: EBUSY: an action on 'race-a' is in progress/);
      assert.ok(!holder.released(), "it did not wait for the holder");
    } finally {
      await holder.release();
    }
    assert.equal((await list(t.pid)).payloads.find((p) => p.name === "race-a")?.rc, 0);
  });
});

/** `xsplice ARGS...` started now: its pid, whether it has exited, and its outcome. */
function startCli(args: string[]): {
  pid: number;
  readonly exited: boolean;
  run: Promise<XspliceRun>;
  kill(): void;
} {
  const child = spawn(process.execPath, [XSPLICE_BIN, ...args], { stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout.setEncoding("utf8").on("data", (d: string) => {
    stdout += d;
  });
  child.stderr.setEncoding("utf8").on("data", (d: string) => {
    stderr += d;
  });
  const started = performance.now();
  const run = new Promise<XspliceRun>((resolve) =>
    child.on("close", (code) =>
      resolve({
        args,
        status: code ?? -1,
        stdout,
        stderr,
        error: "",
        elapsedMs: performance.now() - started,
      }),
    ),
  );
  return {
    pid: child.pid!,
    get exited() {
      return child.exitCode !== null || child.signalCode !== null;
    },
    run,
    kill: () => {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    },
  };
}

/** Whether xsplice process `pid` has loaded koffi and its main thread sleeps in a futex wait. */
function waitingInFutex(pid: number): boolean {
  try {
    if (!readFileSync(`/proc/${pid}/maps`, "utf8").includes("koffi")) return false;
    return readFileSync(`/proc/${pid}/syscall`, "utf8").split(" ")[0] === "202";
  } catch {
    return false;
  }
}

/**
 * Start hold-session.ts on `pid` (marking payload `name` in progress, if given); resolves once it
 * holds the target. `release()` tells it to let go and resolves once it has gone.
 */
async function hold(pid: number, name?: string): Promise<{ release(): Promise<void>; released(): boolean }> {
  const child = spawn(process.execPath, ["--import", "tsx", HOLD, String(pid), ...(name ? [name] : [])], {
    stdio: ["pipe", "pipe", "inherit"],
  });
  const done = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  let out = "";
  try {
    await new Promise<void>((resolve, reject) => {
      child.stdout!.setEncoding("utf8").on("data", (d: string) => {
        out += d;
        if (out.includes("held\n")) resolve();
      });
      child.once("exit", (code) => reject(new Error(`holder exited with ${code}: ${out}`)));
    });
  } catch (err) {
    child.kill("SIGKILL");
    throw err;
  }
  let told = false;
  return {
    release: async () => {
      if (!told) child.stdin!.end("go\n");
      told = true;
      await done;
    },
    released: () => out.includes("released") || child.exitCode !== null,
  };
}

const HOLD = join(dirname(fileURLToPath(import.meta.url)), "../../fixtures/upload/hold-session.ts");
