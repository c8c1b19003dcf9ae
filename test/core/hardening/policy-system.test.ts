/**
 * Issue #11 item 11: the system policy `/etc/xsplice/policy.json` can only be
 * tightened — by `--policy`, `$XSPLICE_POLICY`, flags or a library caller —
 * and a policy that cannot be trusted fails closed. The system file is made
 * in a private mount namespace (`_system-policy.ts`), never in this machine's
 * /etc; the target is a real process, and every refusal leaves it without a
 * registry and with the same mappings.
 */
import assert from "node:assert/strict";
import { chmodSync, chownSync, copyFileSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { readTargetRegistry } from "../../../src/core/registry/remote.ts";
import { type KeyPair, opensslKeyPair, tempDir, xsplice } from "../../cli/_run.ts";
import { startTarget, type Target, waitBlockedInRead } from "../../helpers/target.ts";
import { payload, source, TARGET } from "../upload/_fixtures.ts";
import { type EtcFile, etcLayer, runWithEtc, xspliceWithEtc } from "./_system-policy.ts";

describe("the system policy cannot be loosened", () => {
  let t: Target;
  let tmp: { dir: string; remove: () => void };
  let trusted: KeyPair;
  let other: KeyPair;
  let unsigned: string;
  let signedTrusted: string;
  let signedOther: string;
  let empty: string;
  let layers = 0;
  const strict = () => JSON.stringify({ requireSignature: true, trustedKeys: ["trusted.pub.pem"] });

  /** A fresh /etc layer holding `files` under /etc/xsplice/. */
  function layer(files: Record<string, EtcFile>): string {
    return etcLayer(join(tmp.dir, `etc-${layers++}`), files);
  }
  const pem = (mode = 0o644): EtcFile => ({ content: readFileSync(trusted.pub, "utf8"), mode });

  /** xsplice under `etc` refuses with `errno` and `re`; the target is as it was. */
  async function refused(
    etc: string,
    args: string[],
    env: Record<string, string>,
    errno: string,
    re: RegExp,
  ) {
    const maps = readFileSync(`/proc/${t.pid}/maps`, "utf8");
    const r = await xspliceWithEtc(etc, args, env);
    assert.equal(r.status, 1, r.stdout + r.stderr);
    assert.equal(r.stderr.trimEnd().split("\n").length, 1, r.stderr);
    assert.match(r.stderr, new RegExp(`: ${errno}: `), r.stderr);
    assert.match(r.stderr, re);
    assert.equal(readFileSync(`/proc/${t.pid}/maps`, "utf8"), maps, "mappings unchanged");
    assert.equal(readTargetRegistry(t.pid), undefined, "no registry");
  }

  before(async () => {
    tmp = tempDir("syspolicy");
    trusted = opensslKeyPair(tmp.dir, "trusted", "ed25519");
    other = opensslKeyPair(tmp.dir, "other", "ed25519");
    unsigned = join(tmp.dir, "fix.xsplice");
    copyFileSync(payload([source("probes.c")]), unsigned);
    signedTrusted = join(tmp.dir, "fix-trusted.xsplice");
    signedOther = join(tmp.dir, "fix-other.xsplice");
    for (const [key, out] of [
      [trusted.priv, signedTrusted],
      [other.priv, signedOther],
    ] as const) {
      const r = await xsplice(["sign", unsigned, "--key", key, "-o", out]);
      assert.equal(r.status, 0, r.stderr);
    }
    empty = join(tmp.dir, "empty.json");
    writeFileSync(empty, "{}");
    t = await startTarget(TARGET);
    await waitBlockedInRead(t.pid);
  });
  after(async () => {
    await t?.kill();
    tmp?.remove();
  });

  it("--policy {} and XSPLICE_POLICY={} do not replace it: an unsigned load is still EKEYREJECTED", async () => {
    const etc = layer({ "policy.json": { content: strict() }, "trusted.pub.pem": pem() });
    await refused(
      etc,
      ["load", String(t.pid), unsigned, "--policy", empty],
      {},
      "EKEYREJECTED",
      /not signed/,
    );
    await refused(
      etc,
      ["load", String(t.pid), unsigned],
      { XSPLICE_POLICY: empty },
      "EKEYREJECTED",
      /not signed/,
    );
    await refused(etc, ["upload", String(t.pid), "fix", unsigned], {}, "EKEYREJECTED", /not signed/);
  });

  it("a further policy file cannot trust a key the system policy does not", async () => {
    const etc = layer({ "policy.json": { content: strict() }, "trusted.pub.pem": pem() });
    const widen = join(tmp.dir, "widen.json");
    writeFileSync(widen, JSON.stringify({ trustedKeys: [other.pub] }));
    await refused(
      etc,
      ["load", String(t.pid), signedOther, "--policy", widen],
      {},
      "EINVAL",
      /other\.pub\.pem is not a trusted key of policy \/etc\/xsplice\/policy\.json/,
    );
  });

  it("fails closed: a dangling symlink, a file or key anyone may rewrite, a file owned by another user", async () => {
    await refused(
      layer({ "policy.json": { symlink: "/nonexistent/policy.json" } }),
      ["load", String(t.pid), unsigned],
      {},
      "EINVAL",
      /policy \/etc\/xsplice\/policy\.json: is a dangling symbolic link/,
    );
    await refused(
      layer({ "policy.json": { content: strict(), mode: 0o666 }, "trusted.pub.pem": pem() }),
      ["load", String(t.pid), signedTrusted],
      {},
      "EINVAL",
      /policy \/etc\/xsplice\/policy\.json: the file is writable by everyone: refused/,
    );
    await refused(
      layer({ "policy.json": { content: strict() }, "trusted.pub.pem": pem(0o646) }),
      ["load", String(t.pid), signedTrusted],
      {},
      "EINVAL",
      /trusted key \/etc\/xsplice\/trusted\.pub\.pem is writable by everyone: refused/,
    );
    const foreign = layer({ "policy.json": { content: strict() }, "trusted.pub.pem": pem() });
    chownSync(join(foreign, "upper/xsplice/policy.json"), 1000, 1000);
    await refused(
      foreign,
      ["load", String(t.pid), signedTrusted],
      {},
      "EINVAL",
      /policy \/etc\/xsplice\/policy\.json: the file is owned by uid 1000: refused/,
    );
    const worldWritable = join(tmp.dir, "world.json");
    writeFileSync(worldWritable, "{}");
    chmodSync(worldWritable, 0o666);
    await refused(
      layer({}),
      ["load", String(t.pid), unsigned, "--policy", worldWritable],
      {},
      "EINVAL",
      /world\.json: the file is writable by everyone/,
    );
  });

  it("the library's upload() enforces the system policy too", async () => {
    const etc = layer({ "policy.json": { content: strict() }, "trusted.pub.pem": pem() });
    const script = join(tmp.dir, "lib-upload.mts");
    writeFileSync(
      script,
      `import { readFileSync } from "node:fs";
import { upload } from ${JSON.stringify(join(process.cwd(), "src/index.ts"))};
try {
  await upload(${t.pid}, "lib", new Uint8Array(readFileSync(${JSON.stringify(unsigned)})));
  console.log("uploaded");
} catch (e) {
  console.log(e.errno, e.message);
}
`,
    );
    const maps = readFileSync(`/proc/${t.pid}/maps`, "utf8");
    const r = await runWithEtc(etc, [process.execPath, "--import", "tsx", script]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /^EKEYREJECTED payload is not signed$/m);
    assert.equal(readFileSync(`/proc/${t.pid}/maps`, "utf8"), maps);
  });

  it("what the system policy trusts still loads, whatever further file is named", async () => {
    const etc = layer({ "policy.json": { content: strict() }, "trusted.pub.pem": pem() });
    const r = await xspliceWithEtc(etc, ["load", String(t.pid), signedTrusted, "--name", "fix", "--json"], {
      XSPLICE_POLICY: empty,
    });
    assert.equal(r.status, 0, r.stdout + r.stderr);
    assert.equal(JSON.parse(r.stdout).state, "APPLIED");
  });
});
