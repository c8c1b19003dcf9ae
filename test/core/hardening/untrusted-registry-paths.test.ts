/**
 * Issue #11 item 7: no path taken from the registry is ever opened. The
 * registry is the target's to forge: a record whose object path names a FIFO
 * hung `apply` for ever with the target seized, `/dev/zero` grew xsplice to
 * 1.4 GB, `/etc/shadow` leaked into a warning. Here a real payload's record
 * is rewritten (through /proc/PID/mem, as the target itself could) to name a
 * FIFO nobody writes, and `apply` must finish and apply as usual, its
 * warnings naming only what the process really maps.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { uploadPayload } from "../../../src/core/loader.ts";
import { commitRegistry } from "../../../src/core/registry/format.ts";
import { findRegistry, processMemory, readTargetRegistry } from "../../../src/core/registry/remote.ts";
import { tempDir, xsplice } from "../../cli/_run.ts";
import { startTarget, type Target, waitBlockedInRead } from "../../helpers/target.ts";
import { payload, source, TARGET } from "../upload/_fixtures.ts";

describe("a registry naming a FIFO as the target object", () => {
  let t: Target;
  let tmp: { dir: string; remove: () => void };
  before(async () => {
    tmp = tempDir("regpath");
    t = await startTarget(TARGET);
    await waitBlockedInRead(t.pid);
  });
  after(async () => {
    await t?.kill();
    tmp?.remove();
  });

  it("apply never opens the path the record names", async () => {
    const fifo = join(tmp.dir, "object.fifo");
    execFileSync("mkfifo", [fifo]);
    uploadPayload(t.pid, "fix", readFileSync(payload([source("probes.c")])));
    const state = readTargetRegistry(t.pid)!.state;
    state.payloads[0]!.object.path = fifo;
    commitRegistry(processMemory(t.pid), findRegistry(t.pid)!, state);
    const r = await xsplice(["apply", String(t.pid), "fix", "--json"]);
    assert.equal(r.status, 0, r.stdout + r.stderr);
    const doc = JSON.parse(r.stdout) as { state: string; warnings: string[] };
    assert.equal(doc.state, "APPLIED");
    assert.ok(!doc.warnings.some((w) => w.includes(fifo)), doc.warnings.join("\n"));
  });
});
