import assert from "node:assert/strict";
import { generateKeyPairSync } from "node:crypto";
import { test } from "node:test";
import { keyIdOf, type TrustedKey } from "../../payload/index.ts";
import { tightenPolicy, type UploadPolicy } from "./policy.ts";

function key(): TrustedKey {
  const k = generateKeyPairSync("ed25519").publicKey;
  return { keyId: keyIdOf(k), key: k };
}

const a = key();
const b = key();
const floor: UploadPolicy = {
  requireSignature: true,
  trustedKeys: [a],
  maxSize: 1000,
  files: ["/etc/xsplice/policy.json"],
};

test("tightening keeps the floor: the requirement stays, the smaller size wins", () => {
  const p = tightenPolicy(floor, { requireSignature: false, maxSize: 5000 });
  assert.equal(p.requireSignature, true);
  assert.equal(p.maxSize, 1000);
  assert.deepEqual(p.trustedKeys, [a]);
  assert.equal(tightenPolicy(floor, { maxSize: 10 }).maxSize, 10);
  assert.equal(
    tightenPolicy({ ...floor, requireSignature: false }, { requireSignature: true }).requireSignature,
    true,
  );
});

test("keys narrow to ones the floor trusts; any other is EINVAL naming it", () => {
  assert.deepEqual(tightenPolicy({ ...floor, trustedKeys: [a, b] }, { trustedKeys: [b] }).trustedKeys, [b]);
  assert.throws(
    () => tightenPolicy(floor, { trustedKeys: [b], keyNames: ["b.pem"], what: "--trusted-key" }),
    (e: unknown) =>
      (e as { errno?: string }).errno === "EINVAL" &&
      /--trusted-key b\.pem is not a trusted key of policy \/etc\/xsplice\/policy\.json/.test(
        (e as Error).message,
      ),
  );
  // A floor without keys: the keys given are what a signature is checked against.
  const open: UploadPolicy = { requireSignature: false, trustedKeys: [], maxSize: 1000, files: [] };
  assert.deepEqual(tightenPolicy(open, { trustedKeys: [b] }).trustedKeys, [b]);
});
