/**
 * Payload signatures (SPEC §9): the ELF payload, then the marker
 * `~Module signature appended~\n`, then a fixed 12-byte header, the signature,
 * the key identifier and the signer's name. The signature covers every byte
 * of the file but its own: the payload, the marker, the header, the key id and
 * the signer's name — so a name shown as the signer is the one the key holder
 * signed (issue #11 item 11). Splitting and parsing need no keys;
 * `verifySignature` checks a split payload against a set of trusted keys with
 * node:crypto.
 */
import { createHash, createPublicKey, type KeyObject, sign, verify } from "node:crypto";
import { XspliceError } from "../errors.ts";

/** The marker that separates the ELF payload from its signature (SPEC §9). */
export const SIGNATURE_MARKER: Uint8Array = new TextEncoder().encode("~Module signature appended~\n");

/** Size of `struct elf_payload_signature`. */
export const SIGNATURE_HEADER_SIZE = 12;

/** `algo` values of the signature header. */
export const SIG_ALGO = { RSA: 1, ED25519: 2 } as const;
/** `hash` value of the signature header: the only hash xsplice uses. */
export const SIG_HASH_SHA256 = 4;
/** `id_type` value: the key id is an X.509 subjectKeyIdentifier. */
export const SIG_ID_X509_SKID = 1;

/** A parsed signature trailer. */
export interface SignatureInfo {
  /** 1 = RSA PKCS#1 v1.5, 2 = Ed25519; other values are kept and rejected at verification. */
  algo: number;
  /** 4 = SHA-256. */
  hash: number;
  idType: number;
  signature: Uint8Array;
  keyId: Uint8Array;
  /** The signer's name, decoded as UTF-8. */
  signer: string;
  /** Offset of the marker in the file: the length of the ELF payload. */
  offset: number;
  /** The bytes the signature covers: the whole file without the signature itself. */
  covered: Uint8Array;
}

/** A file split at its signature marker. */
export interface SignedParts {
  /** The ELF payload: every byte before the marker. */
  elf: Uint8Array;
  /** The trailer, absent for an unsigned payload. */
  signature?: SignatureInfo;
}

/** A key that `verifySignature` trusts, found by its key identifier. */
export interface TrustedKey {
  keyId: Uint8Array;
  /** A public key (or a private key, whose public half is used), as a KeyObject or PEM text. */
  key: KeyObject | string;
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** Last start of `needle` in `bytes` at or after `from`, or -1. */
function lastIndexOf(bytes: Uint8Array, needle: Uint8Array, from: number): number {
  // Buffer's native search over the bytes past the image only: a JavaScript loop over the whole
  // file was 9 ms of a 1 MB payload's upload, on every start of the command.
  const tail = Buffer.from(bytes.buffer, bytes.byteOffset + from, bytes.length - from);
  const at = tail.lastIndexOf(needle);
  return at < 0 ? -1 : from + at;
}

/**
 * Where the ELF image described by `bytes`' own headers ends: the end of the
 * section header table or of the last section's data, whichever is later.
 * A marker before that point lies inside the payload (say, a string in its
 * `.rodata`), so it does not start a signature. Returns 0 when the headers are
 * not readable (the ELF reader reports those faults later), and at most the
 * file's length.
 */
function elfExtent(bytes: Uint8Array): number {
  if (bytes.length < 64) return 0;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const shoff = view.getBigUint64(0x28, true);
  const shentsize = view.getUint16(0x3a, true);
  const shnum = view.getUint16(0x3c, true);
  if (shoff > BigInt(bytes.length)) return 0;
  const table = Number(shoff);
  let end = table + shnum * shentsize;
  if (shentsize < 64 || end > bytes.length) return Math.min(end, bytes.length);
  for (let i = 0; i < shnum; i++) {
    const h = table + i * shentsize;
    const type = view.getUint32(h + 4, true);
    if (type === 8) continue; // SHT_NOBITS occupies no file bytes
    const last = view.getBigUint64(h + 0x18, true) + view.getBigUint64(h + 0x20, true);
    if (last <= BigInt(bytes.length) && Number(last) > end) end = Number(last);
  }
  return end;
}

/**
 * Split a file into the signed ELF bytes and its signature trailer (SPEC §9).
 * The marker is searched from the end; one found inside the ELF image itself
 * does not count. A trailer that is cut short or has bytes left over is `EINVAL`.
 */
export function splitSignature(file: Uint8Array): SignedParts {
  // The last marker at or past the image's end; one inside the image does not count.
  const at = lastIndexOf(file, SIGNATURE_MARKER, elfExtent(file));
  if (at < 0) return { elf: file };
  const h = at + SIGNATURE_MARKER.length;
  const where = { offset: h };
  if (file.length - h < SIGNATURE_HEADER_SIZE) {
    throw new XspliceError(
      "EINVAL",
      `signature header truncated: ${file.length - h} of ${SIGNATURE_HEADER_SIZE} bytes at offset 0x${h.toString(16)}`,
      where,
    );
  }
  const view = new DataView(file.buffer, file.byteOffset + h, SIGNATURE_HEADER_SIZE);
  const algo = view.getUint8(0);
  const hash = view.getUint8(1);
  const idType = view.getUint8(2);
  const signerLen = view.getUint8(3);
  const keyIdLen = view.getUint8(4);
  const sigLen = view.getUint32(8, false); // big-endian, as in Linux module signatures
  const body = h + SIGNATURE_HEADER_SIZE;
  const total = body + sigLen + keyIdLen + signerLen;
  if (total !== file.length) {
    throw new XspliceError(
      "EINVAL",
      `signature trailer at offset 0x${h.toString(16)} declares ${total - body} bytes but ${file.length - body} follow`,
      where,
    );
  }
  if (sigLen === 0) {
    throw new XspliceError("EINVAL", `empty signature at offset 0x${body.toString(16)}`, where);
  }
  return {
    elf: file.subarray(0, at),
    signature: {
      algo,
      hash,
      idType,
      signature: file.subarray(body, body + sigLen),
      keyId: file.subarray(body + sigLen, body + sigLen + keyIdLen),
      signer: new TextDecoder().decode(file.subarray(body + sigLen + keyIdLen, total)),
      offset: at,
      covered: concat(file.subarray(0, body), file.subarray(body + sigLen, total)),
    },
  };
}

/**
 * A key identifier for a public key: SHA-1 of its DER SubjectPublicKeyInfo.
 * What `xsplice` uses when a key comes without an X.509 certificate.
 */
export function keyIdOf(key: KeyObject | string): Uint8Array {
  const pub = publicKeyOf(key);
  return new Uint8Array(
    createHash("sha1")
      .update(pub.export({ type: "spki", format: "der" }))
      .digest(),
  );
}

/** The public half of a key given as PEM text or as a public or private KeyObject. */
function publicKeyOf(key: KeyObject | string): KeyObject {
  return typeof key !== "string" && key.type === "public" ? key : createPublicKey(key);
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

function algoOfKey(key: KeyObject): number | undefined {
  return key.asymmetricKeyType === "rsa"
    ? SIG_ALGO.RSA
    : key.asymmetricKeyType === "ed25519"
      ? SIG_ALGO.ED25519
      : undefined;
}

/** What a successful verification established. */
export interface VerifiedSignature {
  signed: boolean;
  keyId?: Uint8Array;
  signer?: string;
}

/**
 * Check a split payload against trusted keys (SPEC §9). RSA signatures are
 * PKCS#1 v1.5 over SHA-256; Ed25519 signs the bytes themselves (PureEdDSA), the
 * header still saying SHA-256. Every refusal is `EKEYREJECTED`: unsigned (unless
 * `required: false`), unknown key, algorithm or hash not supported, wrong signature.
 */
export function verifySignature(
  parts: SignedParts,
  trustedKeys: readonly TrustedKey[],
  opts: { required?: boolean } = {},
): VerifiedSignature {
  const sig = parts.signature;
  if (sig === undefined) {
    if (opts.required ?? true) throw new XspliceError("EKEYREJECTED", "payload is not signed");
    return { signed: false };
  }
  const keyHex = Buffer.from(sig.keyId).toString("hex") || "(empty)";
  if (sig.hash !== SIG_HASH_SHA256) {
    throw new XspliceError("EKEYREJECTED", `signature hash ${sig.hash} not supported (only 4, SHA-256)`);
  }
  if (sig.algo !== SIG_ALGO.RSA && sig.algo !== SIG_ALGO.ED25519) {
    throw new XspliceError("EKEYREJECTED", `signature algorithm ${sig.algo} not supported`);
  }
  const trusted = trustedKeys.find((k) => equalBytes(k.keyId, sig.keyId));
  if (trusted === undefined) {
    throw new XspliceError("EKEYREJECTED", `signed by unknown key ${keyHex} (${sig.signer || "no signer"})`);
  }
  let pub: KeyObject;
  try {
    pub = publicKeyOf(trusted.key);
  } catch (err) {
    throw new XspliceError(
      "EKEYREJECTED",
      `trusted key ${keyHex} is not a usable public key`,
      {},
      { cause: err },
    );
  }
  if (algoOfKey(pub) !== sig.algo) {
    throw new XspliceError(
      "EKEYREJECTED",
      `signature algorithm ${sig.algo} does not match key ${keyHex} (${pub.asymmetricKeyType})`,
    );
  }
  let ok = false;
  try {
    ok =
      sig.algo === SIG_ALGO.RSA
        ? verify("sha256", sig.covered, pub, sig.signature)
        : verify(null, sig.covered, pub, sig.signature);
  } catch {
    ok = false; // a malformed signature (wrong length) is just a bad signature
  }
  if (!ok) throw new XspliceError("EKEYREJECTED", `bad signature by key ${keyHex} (${sig.signer})`);
  return { signed: true, keyId: sig.keyId, signer: sig.signer };
}

/**
 * Append a signature trailer to an unsigned payload (SPEC §9), RSA PKCS#1 v1.5
 * SHA-256 or Ed25519 by the key's type. A payload that is already signed is
 * `EINVAL` (its old trailer would be covered by the new signature).
 */
export function signPayload(
  bytes: Uint8Array,
  privateKey: KeyObject | string,
  keyId: Uint8Array,
  signer: string,
): Uint8Array {
  if (splitSignature(bytes).signature !== undefined) {
    throw new XspliceError("EINVAL", "payload is already signed");
  }
  const key = privateKey;
  const signerBytes = new TextEncoder().encode(signer);
  if (signerBytes.length > 255 || keyId.length > 255) {
    throw new XspliceError("EINVAL", "signer name and key id must be at most 255 bytes each");
  }
  let algo: number | undefined;
  let sigLen: number;
  try {
    const pub = publicKeyOf(key);
    algo = algoOfKey(pub);
    if (algo === undefined) {
      throw new XspliceError(
        "EINVAL",
        `key type ${pub.asymmetricKeyType} cannot sign payloads (RSA or Ed25519)`,
      );
    }
    // The header (with sig_len) is signed too, so the length must be known first.
    sigLen = algo === SIG_ALGO.RSA ? Math.ceil((pub.asymmetricKeyDetails?.modulusLength ?? 0) / 8) : 64;
  } catch (err) {
    if (err instanceof XspliceError) throw err;
    throw new XspliceError(
      "EINVAL",
      `cannot sign with this key: ${(err as Error).message}`,
      {},
      { cause: err },
    );
  }
  const header = new Uint8Array(SIGNATURE_HEADER_SIZE);
  const view = new DataView(header.buffer);
  view.setUint8(0, algo);
  view.setUint8(1, SIG_HASH_SHA256);
  view.setUint8(2, SIG_ID_X509_SKID);
  view.setUint8(3, signerBytes.length);
  view.setUint8(4, keyId.length);
  view.setUint32(8, sigLen, false);
  const covered = concat(bytes, SIGNATURE_MARKER, header, keyId, signerBytes);
  let signature: Buffer;
  try {
    signature = algo === SIG_ALGO.RSA ? sign("sha256", covered, key) : sign(null, covered, key);
  } catch (err) {
    throw new XspliceError(
      "EINVAL",
      `cannot sign with this key: ${(err as Error).message}`,
      {},
      { cause: err },
    );
  }
  if (signature.length !== sigLen)
    throw new XspliceError("EINVAL", `signature of ${signature.length} bytes, expected ${sigLen}`);
  return concat(bytes, SIGNATURE_MARKER, header, signature, keyId, signerBytes);
}
