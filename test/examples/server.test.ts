/**
 * Example 1 (examples/server/): the multi-threaded server with the ECHO
 * bounds bug, its clients, and the fix payload, end to end: build the
 * target, start it, build the fix with `xsplice build`, `xsplice load`,
 * observe the exploit refused and normal requests unchanged, `xsplice
 * revert`, observe the leak again, unload, clean up.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { before, test } from "node:test";
import { runExploit } from "../../examples/lib/server-clients.ts";
import {
  buildExamplePayload,
  oneShot,
  openConnection,
  outDir,
  program,
  programForFile,
  requireCommands,
  stateOf,
  xs,
} from "./_examples.ts";

const secret = `tok-${randomBytes(6).toString("hex")}`;
const server = programForFile("server", ["--exit-on-eof"], { env: { SERVER_SECRET: secret } });
let exploitExe: string;
/** The port the server said it listens on (its ready line). */
const port = () => Number(/port=(\d+)/.exec(server.readyLine)?.[1]);

before(async () => {
  exploitExe = await program("exploit");
});

test("normal requests get their well-defined answers, several per connection", async () => {
  const reply = await oneShot(port(), "PING\nECHO 5 hello\nECHO 3 hello\nBOGUS\nECHO x y\n");
  assert.equal(reply, "PONG\nOK 5\nhelloOK 3\nhelERR unknown request\nERR bad length\n");
  const stats = await oneShot(port(), "STATS\n");
  assert.match(stats, /^OK served=\d+\n$/);
  assert.ok(Number(/served=(\d+)/.exec(stats)?.[1]) >= 6, stats);
});

test("the exploit reads past the echo buffer into the secret (unpatched)", async () => {
  const r = await runExploit(exploitExe, port(), 200);
  assert.equal(r.status, 0, r.output);
  assert.equal(r.reply, "OK 200");
  assert.equal(r.data.length, 200);
  assert.equal(r.data.subarray(0, 2).toString(), "hi");
  assert.ok(r.data.includes(secret), `the leak holds the secret: ${r.output}`);
});

test("the fix builds against the server: one replacement of handle_echo, CVE metadata", async () => {
  const out = join(outDir(), "fix.xsplice");
  const built = await buildExamplePayload("server/fix.c", server.exe, out);
  assert.deepEqual(
    built.funcs.map((f) => [f.name, f.replacement, f.nop]),
    [["handle_echo", "handle_echo_fixed", false]],
  );
  const doc = await xs(["inspect", out]);
  assert.equal((doc["metadata"] as Record<string, string>)["cve"], "CVE-2026-0001");
  assert.equal(doc["target"], built.target);
});

test("load the fix live: exploit refused, answers unchanged; revert: leak again", async () => {
  await requireCommands();
  const out = join(outDir(), "fix.xsplice");
  await buildExamplePayload("server/fix.c", server.exe, out);
  const pid = String(server.program.pid);
  // A connection opened before the patch: its thread waits in recv while the patch goes in.
  const kept = await openConnection(port());
  assert.equal(await kept.ask("ECHO 200 hi\n", 7 + 200).then((r) => r.includes(secret)), true);

  await xs(["load", pid, out, "--name", "cve-2026-0001"]);
  assert.equal(await stateOf(server.program.pid, "cve-2026-0001"), "APPLIED");
  const list = await xs(["list", pid]);
  const entry = (list["payloads"] as { name: string; metadata: Record<string, string> }[]).find(
    (p) => p.name === "cve-2026-0001",
  );
  assert.equal(entry?.metadata["cve"], "CVE-2026-0001");

  const refused = await runExploit(exploitExe, port(), 200);
  assert.equal(refused.status, 3, refused.output);
  // "64 bytes" here means strlen returned garbage: glibc's strlen and memcpy are IFUNCs, and the
  // payload's calls must reach the implementations the resolvers pick, not the resolvers.
  assert.equal(
    refused.reply,
    "ERR length 200 exceeds the 2 bytes sent",
    "the fix's strlen/memcpy calls work",
  );
  assert.ok(!refused.output.includes(secret));
  assert.equal(await oneShot(port(), "ECHO 5 hello\nECHO 2 hi\nPING\n"), "OK 5\nhelloOK 2\nhiPONG\n");
  const expected = "ERR length 200 exceeds the 2 bytes sent\n";
  assert.equal(await kept.ask("ECHO 200 hi\n", expected.length), expected, "the old connection runs the fix");

  await xs(["revert", pid, "cve-2026-0001"]);
  assert.equal(await stateOf(server.program.pid, "cve-2026-0001"), "CHECKED");
  const leaked = await runExploit(exploitExe, port(), 200);
  assert.ok(
    leaked.status === 0 && leaked.data.includes(secret),
    `reverted code leaks again: ${leaked.output}`,
  );
  const normal = "OK 4\nping";
  assert.equal(await kept.ask("ECHO 4 ping\n", normal.length), normal);
  kept.close();

  await xs(["unload", pid, "cve-2026-0001"]);
  await xs(["get", pid, "cve-2026-0001"], 1);
  assert.equal(server.program.exited, false, "the server survived load, revert and unload");
});
