/**
 * The demo's readings of its clients' output: the load generator's report
 * lines (from a real run against the real server) and the rendering of
 * leaked bytes.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { startProgram } from "../../examples/lib/program.ts";
import { parseCounts, parseDone, showBytes } from "../../examples/lib/server-clients.ts";
import { program } from "./_examples.ts";

test("loadgen against the server: progress lines count up, the done line parses, no failures", async () => {
  const [serverExe, loadgenExe] = await Promise.all([program("server"), program("loadgen")]);
  const { program: server, readyLine } = await startProgram(serverExe, ["--exit-on-eof"]);
  try {
    const port = /port=(\d+)/.exec(readyLine)![1]!;
    const { program: load } = await startProgram(loadgenExe, ["--port", port, "--connections", "2"], {
      ready: /^started /,
    });
    await load.waitFor(/^progress ok=[1-9]/);
    await load.stop("SIGTERM", 5000);
    assert.equal(load.exitStatus, 0);
    const counts = load.lines.map(parseCounts).filter((c) => c !== undefined);
    assert.ok(counts.length >= 2, load.lines.join("\n"));
    for (let i = 1; i < counts.length; i++)
      assert.ok(counts[i]!.ok >= counts[i - 1]!.ok, "counters only grow");
    const done = parseDone(load.lines);
    assert.ok(done, load.lines.join("\n"));
    assert.equal(done.failed, 0);
    assert.ok(
      done.ok >= counts.at(-1)!.ok,
      "requests in flight at the stop finish after the last progress line",
    );
    assert.ok(done.p50Us > 0 && done.p50Us <= done.p99Us && done.p99Us <= done.maxUs, JSON.stringify(done));
    assert.equal(done.firstError, undefined);
  } finally {
    await server.stop("SIGKILL");
  }
});

test("the load generator counts a dead server as failures and names the first one", async () => {
  const [serverExe, loadgenExe] = await Promise.all([program("server"), program("loadgen")]);
  const { program: server, readyLine } = await startProgram(serverExe);
  const port = /port=(\d+)/.exec(readyLine)![1]!;
  await server.stop("SIGKILL");
  const { program: load } = await startProgram(loadgenExe, ["--port", port, "--connections", "1"], {
    ready: /^started /,
  });
  await load.waitFor(/^progress ok=0 failed=[1-9]/);
  await load.stop("SIGTERM", 5000);
  const done = parseDone(load.lines);
  assert.ok(done && done.ok === 0 && done.failed > 0, load.lines.join("\n"));
  assert.match(done.firstError ?? "", /connect failed/);
});

test("showBytes collapses NUL runs, escapes other bytes, cuts long output", () => {
  assert.equal(showBytes(Buffer.from("hi\0\0\0tok\x01\0x")), "hi\\0×3tok\\x01\\0x");
  assert.equal(showBytes(Buffer.from("a".repeat(10)), 4), "aaaa…");
  assert.deepEqual(parseCounts("progress ok=12 failed=3"), { ok: 12, failed: 3 });
  assert.equal(parseCounts("reply: OK 200"), undefined);
});
