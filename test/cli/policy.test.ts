/**
 * The signature policy (SPEC §9, src/cli/policy.ts) on every upload path:
 * `load` and `upload` as subprocesses against a real target, the policy from
 * `$XSPLICE_POLICY` or `--policy`. A refused payload leaves the process
 * exactly as it was (same /proc/PID/maps, same bytes in the program's
 * mappings, no registry); a malformed policy file is one EINVAL line naming it.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { copyFileSync, cpSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { readTargetRegistry } from "../../src/core/registry/remote.ts";
import { readMaps } from "../../src/process/maps.ts";
import { readMemory } from "../../src/process/memory.ts";
import { LIB, payload, source, TARGET } from "../core/upload/_fixtures.ts";
import { FIXTURES } from "../helpers/cc.ts";
import { startTarget, type Target, waitBlockedInRead } from "../helpers/target.ts";
import { type KeyPair, opensslKeyPair, tempDir, xsplice } from "./_run.ts";

/** What a refused upload must not change: the maps and a hash of the program's mappings and heap. */
function fingerprint(pid: number): { maps: string; hash: string } {
  const maps = readFileSync(`/proc/${pid}/maps`, "utf8");
  const h = createHash("sha256");
  for (const m of readMaps(pid)) {
    if (m.path !== TARGET && m.path !== LIB && m.path !== "[heap]") continue;
    h.update(readMemory(pid, m.start, Number(m.end - m.start)));
  }
  return { maps, hash: h.digest("hex") };
}

describe("signature policy on upload and load", () => {
  let t: Target;
  let tmp: { dir: string; remove: () => void };
  let trusted: KeyPair;
  let other: KeyPair;
  let unsigned: string;
  let signedTrusted: string;
  let signedOther: string;
  let policy: string;
  before(async () => {
    tmp = tempDir("policy");
    trusted = opensslKeyPair(tmp.dir, "trusted", "ed25519");
    other = opensslKeyPair(tmp.dir, "other", "rsa");
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
    // Relative key path: resolved against the policy file's directory.
    policy = join(tmp.dir, "policy.json");
    writeFileSync(policy, JSON.stringify({ requireSignature: true, trustedKeys: ["trusted.pub.pem"] }));
    t = await startTarget(TARGET);
    await waitBlockedInRead(t.pid); // fingerprints must not see the fixture set up stdin
  });
  after(async () => {
    await t?.kill();
    tmp?.remove();
  });

  /** Run xsplice expecting a refusal with `errno` and `re`; the process must be exactly as before. */
  async function refused(args: string[], env: Record<string, string | undefined>, errno: string, re: RegExp) {
    const was = fingerprint(t.pid);
    const reg = readTargetRegistry(t.pid);
    const r = await xsplice(args, env);
    assert.equal(r.status, 1, r.stdout + r.stderr);
    assert.equal(r.stdout, "");
    const lines = r.stderr.split("\n");
    assert.equal(lines.length, 2, `one line: ${r.stderr}`);
    assert.match(lines[0]!, new RegExp(`^xsplice: (load|upload) \\S+ in ${t.pid}: ${errno}: `));
    assert.match(lines[0]!, re);
    const now = fingerprint(t.pid);
    assert.equal(now.maps, was.maps, "mappings unchanged");
    assert.equal(now.hash, was.hash, "program memory unchanged");
    assert.deepEqual(readTargetRegistry(t.pid), reg, "registry unchanged");
    return r;
  }

  it("the file requires a signature: unsigned load is EKEYREJECTED, nothing touched, no registry", async () => {
    await refused(
      ["load", String(t.pid), unsigned],
      { XSPLICE_POLICY: policy },
      "EKEYREJECTED",
      /not signed/,
    );
    assert.equal(readTargetRegistry(t.pid), undefined, "no registry created");
    assert.doesNotMatch(readFileSync(`/proc/${t.pid}/maps`, "utf8"), /xsplice-registry/);
  });

  it("upload honours the same file (--policy) and a --require-signature flag alone", async () => {
    await refused(
      ["upload", String(t.pid), "fix", unsigned, "--policy", policy],
      {},
      "EKEYREJECTED",
      /not signed/,
    );
    await refused(
      ["load", String(t.pid), unsigned, "--require-signature", "--trusted-key", trusted.pub],
      {},
      "EKEYREJECTED",
      /not signed/,
    );
  });

  it("signed by a key the policy does not trust: EKEYREJECTED naming the key", async () => {
    const r = await refused(
      ["load", String(t.pid), signedOther],
      { XSPLICE_POLICY: policy },
      "EKEYREJECTED",
      /unknown key [0-9a-f]{40} \(other\)/,
    );
    assert.match(r.stderr, /^xsplice: load fix-other in /);
  });

  it("a flag cannot widen the file's trusted keys; --max-size cannot raise its limit", async () => {
    await refused(
      ["load", String(t.pid), signedOther, "--trusted-key", other.pub],
      { XSPLICE_POLICY: policy },
      "EINVAL",
      /--trusted-key .*other\.pub\.pem is not a trusted key of policy .*policy\.json \(nothing can widen the policy\)/,
    );
    const size = readFileSync(signedTrusted).length;
    const small = join(tmp.dir, "small.json");
    writeFileSync(
      small,
      JSON.stringify({ requireSignature: true, trustedKeys: [trusted.pub], maxPayloadSize: size - 1 }),
    );
    await refused(
      ["load", String(t.pid), signedTrusted, "--max-size", String(size * 2)],
      { XSPLICE_POLICY: small },
      "EINVAL",
      new RegExp(`payload is ${size} bytes, more than the limit of ${size - 1}`),
    );
  });

  it("every malformed policy file is one EINVAL line naming the file and the fault", async () => {
    // A copy the test owns: policy files someone else could rewrite are refused before they are parsed,
    // and a checkout may belong to another user than the one running the tests.
    const dir = join(tmp.dir, "malformed");
    cpSync(join(FIXTURES, "policy"), dir, { recursive: true });
    const cases: [string, RegExp][] = [
      ["not-json.txt", /not valid JSON: /],
      ["not-object.json", /not a JSON object/],
      ["unknown-field.json", /unknown field 'requireSignatures'/],
      ["wrong-type.json", /requireSignature must be true or false/],
      ["no-keys.json", /requireSignature is true but trustedKeys lists no key/],
      ["missing-key.json", /cannot read trusted key .*no-such-key\.pem: no such file/],
      ["bad-size.json", /maxPayloadSize must be a positive integer/],
      ["does-not-exist.json", /cannot read: no such file/],
    ];
    for (const [file, re] of cases) {
      const path = join(dir, file);
      const r = await refused(["load", String(t.pid), signedTrusted], { XSPLICE_POLICY: path }, "EINVAL", re);
      assert.ok(r.stderr.includes(`EINVAL: policy ${path}: `), r.stderr);
    }
    // --policy names the file as well, and wins over the environment.
    await refused(
      ["upload", String(t.pid), "fix", signedTrusted, "--policy", join(dir, "wrong-type.json")],
      { XSPLICE_POLICY: policy },
      "EINVAL",
      /wrong-type\.json: requireSignature/,
    );
  });

  it("signed by the trusted key: load is accepted and applied", async () => {
    const r = await xsplice(["load", String(t.pid), signedTrusted, "--name", "fix", "--json"], {
      XSPLICE_POLICY: policy,
    });
    assert.equal(r.status, 0, r.stdout + r.stderr);
    assert.equal(JSON.parse(r.stdout).state, "APPLIED");
    const g = await xsplice(["get", String(t.pid), "fix", "--json"]);
    assert.deepEqual(JSON.parse(g.stdout), { name: "fix", state: "APPLIED", rc: 0 });
  });
});
