/**
 * `xsplice sign FILE --key PEM -o OUT [--signer NAME]` (SPEC §9): append a
 * signature trailer to a payload, for pipelines whose targets run under a
 * signature policy (`policy.ts`). The key is an RSA (PKCS#1 v1.5, SHA-256) or
 * Ed25519 private key in PEM; the key id is `keyIdOf` its public half, which
 * is what a policy's `trustedKeys` entry for that public key matches. The
 * signed bytes are verified against the key before OUT is written, so a
 * pipeline never ships a signature its targets would refuse.
 */
import { createPrivateKey, createPublicKey, type KeyObject } from "node:crypto";
import { readFileSync, renameSync, unlinkSync, writeFileSync } from "node:fs";
import { basename, extname } from "node:path";
import { XspliceError } from "../errors.ts";
import { readPayloadFile } from "../payload/file.ts";
import { keyIdOf, readPayload, signPayload, splitSignature, verifySignature } from "../payload/index.ts";
import type { Command } from "./command.ts";

function oneLine(s: string): string {
  return s.replace(/\r?\n/g, "\\n");
}

/** A private key from PEM file `file`: unreadable, not PEM, or a public key only `EINVAL`. */
export function readPrivateKey(file: string): KeyObject {
  let pem: Buffer;
  try {
    pem = readFileSync(file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why = code === "ENOENT" ? "no such file" : code === "EACCES" ? "permission denied" : code;
    throw new XspliceError("EINVAL", `cannot read key ${file}: ${why}`, {}, { cause: err });
  }
  try {
    return createPrivateKey(pem);
  } catch (err) {
    const hint = (() => {
      try {
        createPublicKey(pem);
        return "it holds a public key; signing needs the private key";
      } catch {
        return oneLine((err as Error).message);
      }
    })();
    throw new XspliceError("EINVAL", `key ${file} is not a PEM private key: ${hint}`, {}, { cause: err });
  }
}

/** What `sign` produced. */
export interface SignResult {
  bytes: Uint8Array;
  algo: "RSA" | "Ed25519";
  keyId: string;
  signer: string;
}

/**
 * Sign payload `bytes` with `key` as `signer` and verify the result against
 * the key's public half (SPEC §9). The input must be a readable, unsigned
 * payload (a malformed one is refused with the reader's errno; a signed one `EINVAL`).
 */
export function signBytes(bytes: Uint8Array, key: KeyObject, signer: string): SignResult {
  readPayload(bytes);
  const type = key.asymmetricKeyType;
  if (type !== "rsa" && type !== "ed25519")
    throw new XspliceError("EINVAL", `key type ${String(type)} cannot sign payloads (RSA or Ed25519)`);
  const pub = createPublicKey(key);
  const keyId = keyIdOf(pub);
  const out = signPayload(bytes, key, keyId, signer);
  verifySignature(splitSignature(out), [{ keyId, key: pub }], { required: true });
  return {
    bytes: out,
    algo: type === "rsa" ? "RSA" : "Ed25519",
    keyId: Buffer.from(keyId).toString("hex"),
    signer,
  };
}

/** Write `bytes` to `out` through a temporary file, so OUT is either whole or absent. */
function writeWhole(out: string, bytes: Uint8Array): void {
  const tmp = `${out}.tmp${process.pid}`;
  try {
    writeFileSync(tmp, bytes);
    renameSync(tmp, out);
  } catch (err) {
    try {
      unlinkSync(tmp);
    } catch {
      // nothing was created
    }
    const code = (err as NodeJS.ErrnoException).code;
    throw new XspliceError(
      code === "EACCES" || code === "ENOENT" ? code : "EIO",
      `cannot write ${out}: ${oneLine((err as Error).message)}`,
      {},
      { cause: err },
    );
  }
}

/** `xsplice sign`. */
export const signCommand: Command = {
  name: "sign",
  usage: "sign FILE --key PEM -o OUT [--signer NAME]",
  summary: "append a signature (RSA or Ed25519 private key) to a payload",
  options: {
    key: { type: "string" },
    output: { type: "string", short: "o" },
    signer: { type: "string" },
  },
  positionals: [1, 1],
  describe: (p) => `sign ${p[0] ?? ""}`.trimEnd(),
  async run(input) {
    const file = input.positionals[0] ?? "";
    const keyFile = input.values["key"];
    const out = input.values["output"];
    if (typeof keyFile !== "string") throw new XspliceError("EINVAL", "--key PEM is required");
    if (typeof out !== "string") throw new XspliceError("EINVAL", "-o OUT is required");
    const signerOpt = input.values["signer"];
    // Without --signer the key file's name says who signed (shown by inspect and in refusals).
    const signer = typeof signerOpt === "string" ? signerOpt : basename(keyFile, extname(keyFile));
    const r = signBytes(readPayloadFile(file), readPrivateKey(keyFile), signer);
    writeWhole(out, r.bytes);
    return {
      json: { file, out, algo: r.algo, keyId: r.keyId, signer: r.signer, size: r.bytes.length },
      text: `signed ${file} -> ${out}: ${r.algo}, key ${r.keyId}, signer ${JSON.stringify(r.signer)}`,
    };
  },
};
