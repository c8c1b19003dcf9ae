/**
 * `packaging/xsplice-agent.service` is a valid unit (`systemd-analyze verify`,
 * where the machine has it), with ExecStart pointed at this checkout's
 * `bin/xsplice.js` since `/usr/bin/xsplice` is where a package installs it.
 */
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { tempDir } from "../cli/_run.ts";
import { ROOT } from "../helpers/cc.ts";

const UNIT = join(ROOT, "packaging/xsplice-agent.service");

function hasSystemdAnalyze(): boolean {
  return spawnSync("systemd-analyze", ["--version"], { stdio: "ignore" }).status === 0;
}

test("the systemd unit verifies, and runs the agent in the foreground", {
  skip: !hasSystemdAnalyze() && "no systemd-analyze",
}, () => {
  const text = readFileSync(UNIT, "utf8");
  assert.match(text, /^ExecStart=\/usr\/bin\/xsplice agent --dir /m);
  assert.match(text, /^Type=simple$/m);
  assert.match(text, /^Restart=always$/m);
  const tmp = tempDir("unit");
  try {
    const copy = join(tmp.dir, "xsplice-agent.service");
    writeFileSync(copy, text.replace("/usr/bin/xsplice", join(ROOT, "bin/xsplice.js")));
    const out = execFileSync("systemd-analyze", ["verify", copy], {
      encoding: "utf8",
      stdio: ["ignore", "pipe", "pipe"],
    });
    assert.equal(out, "");
  } finally {
    tmp.remove();
  }
});
