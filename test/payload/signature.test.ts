/**
 * Payload signatures (SPEC §9) on real payloads: RSA and Ed25519 sign/verify,
 * the trailer layout, tampering, unknown keys, truncation, and readPayload's
 * `signed` flag.
 */
import assert from "node:assert/strict";
import { generateKeyPairSync } from "node:crypto";
import { describe, test } from "node:test";
import { XspliceError } from "../../src/errors.ts";
import { readPayload } from "../../src/payload/read.ts";
import {
  keyIdOf,
  SIGNATURE_HEADER_SIZE,
  SIGNATURE_MARKER,
  signPayload,
  splitSignature,
  type TrustedKey,
  verifySignature,
} from "../../src/payload/signature.ts";
import { fixturePayloadBytes } from "../helpers/payload-fixtures.ts";

const payload = fixturePayloadBytes({ source: "payload/xsplice-basic.c" });
const rsa = generateKeyPairSync("rsa", { modulusLength: 2048 });
const ed = generateKeyPairSync("ed25519");
const other = generateKeyPairSync("ed25519");
const trusted: TrustedKey[] = [
  { keyId: keyIdOf(rsa.publicKey), key: rsa.publicKey },
  { keyId: keyIdOf(ed.publicKey), key: ed.publicKey.export({ type: "spki", format: "pem" }).toString() },
];

function rejects(fn: () => unknown, errno: string, message: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof XspliceError, String(err));
    assert.equal(err.errno, errno);
    assert.match(err.message, message);
    return true;
  });
}

for (const [algo, keys, algoByte] of [
  ["RSA", rsa, 1],
  ["Ed25519", ed, 2],
] as const) {
  describe(`${algo} signatures`, () => {
    const keyId = keyIdOf(keys.publicKey);
    const signed = signPayload(payload, keys.privateKey, keyId, `${algo} test signer`);

    test("the trailer is marker, header (sig_len big-endian), signature, key id, signer", () => {
      const at = payload.length;
      assert.deepEqual(signed.subarray(0, at), payload);
      assert.deepEqual(signed.subarray(at, at + SIGNATURE_MARKER.length), SIGNATURE_MARKER);
      const h = at + SIGNATURE_MARKER.length;
      const dv = new DataView(signed.buffer, signed.byteOffset + h, SIGNATURE_HEADER_SIZE);
      assert.equal(dv.getUint8(0), algoByte);
      assert.equal(dv.getUint8(1), 4);
      assert.equal(dv.getUint8(2), 1);
      assert.equal(dv.getUint8(3), `${algo} test signer`.length);
      assert.equal(dv.getUint8(4), keyId.length);
      const sigLen = dv.getUint32(8, false);
      assert.equal(sigLen, algo === "RSA" ? 256 : 64);
      assert.equal(signed.length, h + SIGNATURE_HEADER_SIZE + sigLen + keyId.length + dv.getUint8(3));
    });

    test("verifies against the trusted keys, and readPayload reports it signed", () => {
      const parts = splitSignature(signed);
      assert.deepEqual(parts.elf, payload);
      const v = verifySignature(parts, trusted);
      assert.equal(v.signed, true);
      assert.equal(v.signer, `${algo} test signer`);
      assert.deepEqual(v.keyId, keyId);
      const p = readPayload(signed);
      assert.equal(p.signed, true);
      assert.equal(p.signature?.algo, algoByte);
      assert.equal(p.funcs.length, 3);
    });

    test("a tampered payload byte or signature byte is EKEYREJECTED", () => {
      const bad = signed.slice();
      const badSig = signed.slice();
      bad[0x100] = (bad[0x100] ?? 0) ^ 1;
      rejects(() => verifySignature(splitSignature(bad), trusted), "EKEYREJECTED", /bad signature/);
      const at = payload.length + SIGNATURE_MARKER.length + SIGNATURE_HEADER_SIZE + 3;
      badSig[at] = (badSig[at] ?? 0) ^ 0x80;
      rejects(() => verifySignature(splitSignature(badSig), trusted), "EKEYREJECTED", /bad signature/);
    });

    test("an unknown key is EKEYREJECTED", () => {
      rejects(
        () =>
          verifySignature(splitSignature(signed), [
            { keyId: keyIdOf(other.publicKey), key: other.publicKey },
          ]),
        "EKEYREJECTED",
        /unknown key/,
      );
    });

    test("a truncated trailer is EINVAL, in readPayload too", () => {
      const cut = signed.subarray(0, payload.length + SIGNATURE_MARKER.length + 5);
      rejects(() => splitSignature(cut), "EINVAL", /signature header truncated: 5 of 12 bytes/);
      rejects(() => readPayload(cut), "EINVAL", /signature header truncated/);
      rejects(() => readPayload(signed.subarray(0, signed.length - 1)), "EINVAL", /declares/);
    });
  });
}

describe("signature policy edges", () => {
  test("unsigned: EKEYREJECTED when required (the default), accepted when not", () => {
    const parts = splitSignature(payload);
    assert.equal(parts.signature, undefined);
    rejects(() => verifySignature(parts, trusted), "EKEYREJECTED", /not signed/);
    assert.deepEqual(verifySignature(parts, trusted, { required: false }), { signed: false });
  });

  test("a key id bound to the other algorithm's key is EKEYREJECTED", () => {
    const keyId = keyIdOf(ed.publicKey);
    const signed = signPayload(payload, ed.privateKey, keyId, "x");
    rejects(
      () => verifySignature(splitSignature(signed), [{ keyId, key: rsa.publicKey }]),
      "EKEYREJECTED",
      /does not match key/,
    );
  });

  test("unsupported algorithm or hash in the header is EKEYREJECTED", () => {
    const signed = signPayload(payload, ed.privateKey, keyIdOf(ed.publicKey), "x");
    const h = payload.length + SIGNATURE_MARKER.length;
    const algo = signed.slice();
    algo[h] = 7;
    rejects(() => verifySignature(splitSignature(algo), trusted), "EKEYREJECTED", /algorithm 7/);
    const hash = signed.slice();
    hash[h + 1] = 2;
    rejects(() => verifySignature(splitSignature(hash), trusted), "EKEYREJECTED", /hash 2/);
  });

  test("signing twice is EINVAL; a non-signing key is EINVAL", () => {
    const signed = signPayload(payload, ed.privateKey, keyIdOf(ed.publicKey), "x");
    rejects(() => signPayload(signed, ed.privateKey, keyIdOf(ed.publicKey), "x"), "EINVAL", /already signed/);
    const x = generateKeyPairSync("x25519");
    rejects(() => signPayload(payload, x.privateKey, new Uint8Array(4), "x"), "EINVAL", /x25519/);
  });

  test("the marker inside the ELF image (before its end) does not start a signature", () => {
    // Overwrite bytes of .comment (inside the image, before the section table) with the marker.
    const at = payload.length - 0x800;
    const copy = payload.slice();
    copy.set(SIGNATURE_MARKER, at);
    assert.equal(splitSignature(copy).signature, undefined);
    assert.equal(splitSignature(copy).elf.length, payload.length);
  });
});
