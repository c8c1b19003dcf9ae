/**
 * Issue #11 item 11: the signer's name and the key id are covered by the
 * signature (SPEC §9). Before, a validly signed payload whose signer bytes were
 * rewritten still verified, and `inspect` showed the forged name; now the
 * signature covers the whole file but itself, so any change to the trailer's
 * header, key id or signer is EKEYREJECTED at upload.
 */
import assert from "node:assert/strict";
import { generateKeyPairSync, sign } from "node:crypto";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { XspliceError } from "../../../src/errors.ts";
import {
  keyIdOf,
  SIGNATURE_HEADER_SIZE,
  SIGNATURE_MARKER,
  signPayload,
  splitSignature,
  verifySignature,
} from "../../../src/payload/signature.ts";
import { payload, source } from "../upload/_fixtures.ts";

const elf = new Uint8Array(readFileSync(payload([source("probes.c")])));

for (const kind of ["ed25519", "rsa"] as const) {
  test(`${kind}: a rewritten signer name, key id byte or header byte no longer verifies`, () => {
    const k =
      kind === "rsa" ? generateKeyPairSync("rsa", { modulusLength: 2048 }) : generateKeyPairSync("ed25519");
    const keyId = keyIdOf(k.publicKey);
    const trusted = [{ keyId, key: k.publicKey }];
    const signed = signPayload(elf, k.privateKey, keyId, "release-team");
    assert.equal(verifySignature(splitSignature(signed), trusted).signer, "release-team");

    const forged = signed.slice();
    forged.set(new TextEncoder().encode("evil-person!"), forged.length - "release-team".length);
    assert.equal(splitSignature(forged).signature?.signer, "evil-person!");
    assert.throws(
      () => verifySignature(splitSignature(forged), trusted),
      (e: unknown) =>
        e instanceof XspliceError && e.errno === "EKEYREJECTED" && /bad signature/.test(e.message),
    );
    const header = elf.length + SIGNATURE_MARKER.length;
    const idType = signed.slice();
    idType[header + 2] = 7; // id_type
    assert.throws(() => verifySignature(splitSignature(idType), trusted), { errno: "EKEYREJECTED" });
  });
}

test("a signature over the ELF bytes alone (the old trailer) is refused", () => {
  const k = generateKeyPairSync("ed25519");
  const keyId = keyIdOf(k.publicKey);
  const good = signPayload(elf, k.privateKey, keyId, "x");
  // Same trailer, signature replaced by one over the payload only: what a forger could reuse.
  const at = elf.length + SIGNATURE_MARKER.length + SIGNATURE_HEADER_SIZE;
  const old = good.slice();
  old.set(sign(null, elf, k.privateKey), at);
  assert.throws(() => verifySignature(splitSignature(old), [{ keyId, key: k.publicKey }]), {
    errno: "EKEYREJECTED",
  });
});
