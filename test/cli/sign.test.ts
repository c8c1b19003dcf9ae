/**
 * `xsplice sign` (SPEC §9) as a subprocess, with keys made by openssl: the
 * trailer is parsed here by the SPEC's layout (not by src/payload), the key id
 * is checked against `openssl pkey -outform DER | sha1`, and the signature
 * against `openssl` itself (dgst -verify for RSA, pkeyutl -verify -rawin for
 * Ed25519) over what it covers: the whole file but the signature (SPEC §9, so
 * the signer's name and key id are signed too). `inspect` then reports it signed.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { payload, source } from "../core/upload/_fixtures.ts";
import { tool } from "../helpers/cc.ts";
import { type KeyPair, opensslKeyPair, tempDir, xsplice } from "./_run.ts";

const MARKER = Buffer.from("~Module signature appended~\n");

/** SPEC §9 trailer, read by hand: header fields, signature, key id, signer. */
function trailer(file: Buffer): {
  elf: Buffer;
  /** Every byte of the file but the signature: what it signs. */
  covered: Buffer;
  algo: number;
  hash: number;
  idType: number;
  sig: Buffer;
  keyId: Buffer;
  signer: string;
} {
  const at = file.lastIndexOf(MARKER);
  assert.ok(at > 0, "marker present");
  const h = at + MARKER.length;
  const signerLen = file[h + 3]!;
  const keyIdLen = file[h + 4]!;
  const sigLen = file.readUInt32BE(h + 8);
  const body = h + 12;
  assert.equal(body + sigLen + keyIdLen + signerLen, file.length, "trailer fills the file");
  return {
    elf: file.subarray(0, at),
    covered: Buffer.concat([file.subarray(0, body), file.subarray(body + sigLen)]),
    algo: file[h]!,
    hash: file[h + 1]!,
    idType: file[h + 2]!,
    sig: file.subarray(body, body + sigLen),
    keyId: file.subarray(body + sigLen, body + sigLen + keyIdLen),
    signer: file.subarray(body + sigLen + keyIdLen).toString("utf8"),
  };
}

/** SHA-1 of the DER SubjectPublicKeyInfo, the DER made by openssl. */
function opensslKeyId(pub: string, dir: string): string {
  const der = join(dir, "key.der");
  tool("openssl", ["pkey", "-pubin", "-in", pub, "-outform", "DER", "-out", der]);
  return createHash("sha1").update(readFileSync(der)).digest("hex");
}

describe("xsplice sign", () => {
  let tmp: { dir: string; remove: () => void };
  let input: string;
  let keys: Record<"rsa" | "ed25519", KeyPair>;
  before(() => {
    tmp = tempDir("sign");
    input = payload([source("probes.c")]);
    keys = { rsa: opensslKeyPair(tmp.dir, "rsa", "rsa"), ed25519: opensslKeyPair(tmp.dir, "ed", "ed25519") };
  });
  after(() => tmp?.remove());

  for (const kind of ["rsa", "ed25519"] as const) {
    it(`${kind}: the trailer verifies with openssl, the key id is the SPKI's SHA-1, inspect says signed`, async () => {
      const out = join(tmp.dir, `${kind}.xsplice`);
      const r = await xsplice([
        "sign",
        input,
        "--key",
        keys[kind].priv,
        "-o",
        out,
        "--signer",
        `build-${kind}`,
        "--json",
      ]);
      assert.equal(r.status, 0, r.stdout + r.stderr);
      const keyId = opensslKeyId(keys[kind].pub, tmp.dir);
      const doc = JSON.parse(r.stdout);
      assert.deepEqual(doc, {
        file: input,
        out,
        algo: kind === "rsa" ? "RSA" : "Ed25519",
        keyId,
        signer: `build-${kind}`,
        size: readFileSync(out).length,
      });
      const t = trailer(readFileSync(out));
      assert.deepEqual(t.elf, readFileSync(input), "the signed bytes are the payload, unchanged");
      assert.equal(t.algo, kind === "rsa" ? 1 : 2);
      assert.equal(t.hash, 4);
      assert.equal(t.idType, 1);
      assert.equal(t.keyId.toString("hex"), keyId);
      assert.equal(t.signer, `build-${kind}`);
      const sig = join(tmp.dir, `${kind}.sig`);
      const elf = join(tmp.dir, `${kind}.elf`);
      writeFileSync(sig, t.sig);
      writeFileSync(elf, t.covered);
      const verified =
        kind === "rsa"
          ? tool("openssl", ["dgst", "-sha256", "-verify", keys[kind].pub, "-signature", sig, elf])
          : tool("openssl", [
              "pkeyutl",
              "-verify",
              "-pubin",
              "-inkey",
              keys[kind].pub,
              "-rawin",
              "-in",
              elf,
              "-sigfile",
              sig,
            ]);
      assert.match(verified, /Verified (OK|Successfully)/);

      const i = await xsplice(["inspect", out, "--json"]);
      assert.equal(i.status, 0, i.stderr);
      const info = JSON.parse(i.stdout);
      assert.equal(info.signed, true);
      assert.deepEqual(info.signature, {
        algo: kind === "rsa" ? "RSA" : "Ed25519",
        keyId,
        signer: `build-${kind}`,
      });
      const text = await xsplice(["inspect", out]);
      assert.match(
        text.stdout,
        new RegExp(`^signed: +yes, ${info.signature.algo}, key ${keyId}, signer "build-${kind}"$`, "m"),
      );
      const plain = JSON.parse((await xsplice(["inspect", input, "--json"])).stdout);
      assert.equal(plain.signed, false);
    });
  }

  it("the signer defaults to the key file's name", async () => {
    const out = join(tmp.dir, "default-signer.xsplice");
    const r = await xsplice(["sign", input, "--key", keys.ed25519.priv, "-o", out]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(
      r.stdout,
      new RegExp(`^signed ${input} -> ${out}: Ed25519, key [0-9a-f]{40}, signer "ed"\\n$`),
    );
    assert.equal(trailer(readFileSync(out)).signer, "ed");
  });

  it("refusals are one EINVAL line and write nothing: a public key, a signed payload, no key, not a payload", async () => {
    const signed = join(tmp.dir, "rsa.xsplice");
    const cases: [string[], RegExp][] = [
      [["--key", keys.rsa.pub], /key .*rsa\.pub\.pem is not a PEM private key: it holds a public key/],
      [["--key", join(tmp.dir, "none.pem")], /cannot read key .*none\.pem: no such file/],
      [[], /--key PEM is required/],
    ];
    for (const [args, re] of cases) {
      const out = join(tmp.dir, "refused.xsplice");
      const r = await xsplice(["sign", input, ...args, "-o", out]);
      assert.equal(r.status, 1);
      assert.match(r.stderr, /^xsplice: sign \S+: EINVAL: [^\n]*\n$/);
      assert.match(r.stderr, re);
      assert.equal(existsSync(out), false, "nothing written");
    }
    if (!existsSync(signed))
      assert.equal((await xsplice(["sign", input, "--key", keys.rsa.priv, "-o", signed])).status, 0);
    const again = await xsplice([
      "sign",
      signed,
      "--key",
      keys.ed25519.priv,
      "-o",
      join(tmp.dir, "x.xsplice"),
    ]);
    assert.equal(again.stderr, `xsplice: sign ${signed}: EINVAL: payload is already signed\n`);
    const junk = join(tmp.dir, "junk.xsplice");
    writeFileSync(junk, "not an ELF file at all, but long enough to have a header of 64 bytes ........");
    const bad = await xsplice(["sign", junk, "--key", keys.rsa.priv, "-o", join(tmp.dir, "y.xsplice")]);
    assert.equal(bad.status, 1);
    assert.match(bad.stderr, /^xsplice: sign \S+junk\.xsplice: EINVAL: [^\n]*magic[^\n]*\n$/i);
    assert.equal(existsSync(join(tmp.dir, "y.xsplice")), false);
  });
});
