/**
 * UPLOAD checks that need neither the payload's contents nor the process
 * (SPEC §2 name and size, §9 signature policy): done first, so a refused
 * payload never costs a read of the target.
 */
import { XspliceError } from "../../errors.ts";
import { splitSignature, type TrustedKey, verifySignature } from "../../payload/index.ts";
import type { RegistryState } from "../registry/records.ts";

/** Longest payload name in bytes (SPEC §2: 127 plus the NUL make 128). */
export const MAX_NAME_BYTES = 127;

/**
 * SPEC §2: 1–127 printable ASCII bytes, else `EINVAL`. Printable means 0x20–0x7e:
 * the name shows in one-line errors and in LIST output, so no control bytes.
 */
export function checkName(name: string): void {
  const bytes = Buffer.from(name, "utf8");
  if (bytes.length === 0 || bytes.length > MAX_NAME_BYTES)
    throw new XspliceError("EINVAL", `payload name must be 1-${MAX_NAME_BYTES} bytes, got ${bytes.length}`);
  const bad = bytes.findIndex((b) => b < 0x20 || b > 0x7e);
  if (bad >= 0)
    throw new XspliceError(
      "EINVAL",
      `payload name has a non-printable byte 0x${bytes[bad]!.toString(16)} at ${bad}`,
    );
}

/** SPEC §2: a name already loaded is `EEXIST`. */
export function checkNameFree(name: string, reg: RegistryState): void {
  if (reg.payloads.some((p) => p.name === name))
    throw new XspliceError("EEXIST", `a payload named '${name}' is already loaded`);
}

/** SPEC §2: an empty payload or one above the limit is `EINVAL`. */
export function checkSize(bytes: Uint8Array, maxSize: number): void {
  if (bytes.length === 0) throw new XspliceError("EINVAL", "payload is empty");
  if (bytes.length > maxSize)
    throw new XspliceError("EINVAL", `payload of ${bytes.length} bytes is above the limit of ${maxSize}`);
}

/** The signature policy of SPEC §9. */
export interface SignaturePolicy {
  /** Refuse unsigned payloads and payloads not signed by a trusted key. */
  requireSignature?: boolean;
  trustedKeys?: readonly TrustedKey[];
}

/**
 * SPEC §9: under `requireSignature`, an unsigned payload or one not signed by
 * a trusted key is `EKEYREJECTED`, before anything touches the target.
 * Without the policy a signature is still checked when trusted keys are given.
 */
export function checkSignature(bytes: Uint8Array, policy: SignaturePolicy): void {
  const keys = policy.trustedKeys ?? [];
  if (!policy.requireSignature && keys.length === 0) return;
  verifySignature(splitSignature(bytes), keys, { required: policy.requireSignature ?? false });
}
