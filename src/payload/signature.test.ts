import assert from "node:assert/strict";
import { generateKeyPairSync } from "node:crypto";
import { test } from "node:test";
import { XspliceError } from "../errors.ts";
import { keyIdOf, SIGNATURE_MARKER, signPayload, splitSignature, verifySignature } from "./signature.ts";

const data = new TextEncoder().encode("not an ELF file, but signable bytes");

test("split(sign(x)) gives back x and a trailer that verifies", () => {
  const k = generateKeyPairSync("ed25519");
  const id = keyIdOf(k.publicKey);
  const signed = signPayload(data, k.privateKey, id, "unit");
  const parts = splitSignature(signed);
  assert.deepEqual(parts.elf, data);
  assert.equal(parts.signature?.offset, data.length);
  assert.equal(parts.signature?.signer, "unit");
  assert.equal(verifySignature(parts, [{ keyId: id, key: k.publicKey }]).signed, true);
});

test("the last marker wins, and bytes after the trailer are EINVAL", () => {
  const k = generateKeyPairSync("ed25519");
  const withMarker = new Uint8Array([...data, ...SIGNATURE_MARKER, ...data]);
  // Not an ELF image: the embedded marker is taken as a (bad) trailer.
  assert.throws(
    () => splitSignature(withMarker),
    (e: unknown) => e instanceof XspliceError && e.errno === "EINVAL",
  );
  const signed = signPayload(new Uint8Array(0), k.privateKey, keyIdOf(k.publicKey), "");
  const extra = new Uint8Array([...signed, 0]);
  assert.throws(
    () => splitSignature(extra),
    (e: unknown) => e instanceof XspliceError && e.errno === "EINVAL" && /declares/.test(e.message),
  );
});

test("keyIdOf is the same for a key object, its PEM and its private half", () => {
  const k = generateKeyPairSync("rsa", { modulusLength: 1024 });
  const pem = k.publicKey.export({ type: "spki", format: "pem" }).toString();
  assert.equal(keyIdOf(k.publicKey).length, 20);
  assert.deepEqual(keyIdOf(pem), keyIdOf(k.publicKey));
  assert.deepEqual(keyIdOf(k.privateKey), keyIdOf(k.publicKey));
});
