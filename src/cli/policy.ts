/**
 * The upload policy of the command line (SPEC §9): one place where every
 * command that uploads (`upload`, `load`) learns whether signatures are
 * required, which keys are trusted and how large a payload may be — from a
 * policy file and from its own flags — so that no upload path can skip it.
 *
 * The file is JSON: `{"requireSignature": bool, "trustedKeys": ["key.pem", ...],
 * "maxPayloadSize": bytes}` (every field optional, no others; relative key
 * paths are relative to the file). Which file: `--policy FILE`, else
 * `$XSPLICE_POLICY`, else `/etc/xsplice/policy.json`, where a missing default
 * file means no policy. A named file that cannot be read or parsed is `EINVAL`
 * naming it: a policy that was meant to hold must never silently vanish.
 *
 * Flags add to the file's policy and can only make it stricter:
 * `--require-signature` turns the requirement on, `--trusted-key` narrows the
 * file's trusted keys to the ones given (a key the file does not trust is
 * `EINVAL`), `--max-size` above the file's limit leaves the file's limit.
 */
import { readFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { XspliceError } from "../errors.ts";
import { DEFAULT_MAX_PAYLOAD_SIZE, keyIdOf, type TrustedKey } from "../payload/index.ts";
import type { Command, CommandInput } from "./command.ts";

/** Where the policy lives when neither `--policy` nor `$XSPLICE_POLICY` names another file. */
export const DEFAULT_POLICY_PATH = "/etc/xsplice/policy.json";

/** The environment variable that names another policy file. */
export const POLICY_ENV = "XSPLICE_POLICY";

/** The policy an upload runs under: what `uploadPayload` takes (SPEC §2 size, §9 signatures). */
export interface UploadPolicy {
  requireSignature: boolean;
  trustedKeys: TrustedKey[];
  maxSize: number;
  /** The policy file that contributed, if any (for messages). */
  file?: string;
}

/** A policy file's contents, keys read and identified. */
export interface PolicyFile {
  path: string;
  requireSignature: boolean;
  /** Trusted keys with the path each came from. */
  trustedKeys: (TrustedKey & { path: string })[];
  maxPayloadSize?: number;
}

/** The options every uploading command declares, so `main.ts` parses them the same way. */
export const POLICY_OPTIONS: Command["options"] = {
  policy: { type: "string" },
  "require-signature": { type: "boolean" },
  "trusted-key": { type: "string", multiple: true },
  "max-size": { type: "string" },
};

/** The usage text of POLICY_OPTIONS. */
export const POLICY_USAGE = "[--policy FILE] [--require-signature] [--trusted-key PEM]... [--max-size BYTES]";

/** Node and JSON messages may hold newlines; SPEC §10 errors are one line. */
function oneLine(s: string): string {
  return s.replace(/\r?\n/g, "\\n");
}

function fsReason(err: unknown): string {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === "ENOENT") return "no such file";
  if (code === "EACCES" || code === "EPERM") return "permission denied";
  if (code === "EISDIR") return "is a directory";
  return oneLine((err as Error).message);
}

function policyError(path: string, problem: string, cause?: unknown): XspliceError {
  return new XspliceError("EINVAL", `policy ${path}: ${problem}`, {}, cause === undefined ? {} : { cause });
}

/** A PEM public (or private) key file as a trusted key; `fail` words the error. */
function readKey(file: string, fail: (problem: string, cause?: unknown) => XspliceError): TrustedKey {
  let pem: string;
  try {
    pem = readFileSync(file, "utf8");
  } catch (err) {
    throw fail(`cannot read trusted key ${file}: ${fsReason(err)}`, err);
  }
  try {
    return { keyId: keyIdOf(pem), key: pem };
  } catch (err) {
    throw fail(`trusted key ${file} is not a PEM key`, err);
  }
}

const FIELDS = new Set(["requireSignature", "trustedKeys", "maxPayloadSize"]);

/**
 * Read and check policy file `path`. Every fault — unreadable, not JSON, an
 * unknown field (a misspelt `requireSignature` must not mean "no policy"), a
 * field of the wrong type, a key that cannot be read, `requireSignature`
 * without any trusted key — is a one-line `EINVAL` naming the file.
 */
export function readPolicyFile(path: string): PolicyFile {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    throw policyError(path, `cannot read: ${fsReason(err)}`, err);
  }
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    throw policyError(path, `not valid JSON: ${oneLine((err as Error).message)}`, err);
  }
  if (typeof doc !== "object" || doc === null || Array.isArray(doc))
    throw policyError(path, "not a JSON object");
  const obj = doc as Record<string, unknown>;
  for (const k of Object.keys(obj))
    if (!FIELDS.has(k))
      throw policyError(path, `unknown field '${k}' (known: requireSignature, trustedKeys, maxPayloadSize)`);
  const req = obj["requireSignature"] ?? false;
  if (typeof req !== "boolean") throw policyError(path, "requireSignature must be true or false");
  const keys = obj["trustedKeys"] ?? [];
  if (!Array.isArray(keys) || keys.some((k) => typeof k !== "string" || k === ""))
    throw policyError(path, "trustedKeys must be a list of PEM file paths");
  const max = obj["maxPayloadSize"];
  if (max !== undefined && (typeof max !== "number" || !Number.isSafeInteger(max) || max <= 0))
    throw policyError(path, "maxPayloadSize must be a positive integer number of bytes");
  if (req && keys.length === 0)
    throw policyError(path, "requireSignature is true but trustedKeys lists no key");
  const fail = (problem: string, cause?: unknown) => policyError(path, problem, cause);
  return {
    path,
    requireSignature: req,
    trustedKeys: (keys as string[]).map((k) => {
      const file = resolve(dirname(path), k);
      return { ...readKey(file, fail), path: file };
    }),
    ...(max === undefined ? {} : { maxPayloadSize: max }),
  };
}

/**
 * The policy file in force: `explicit` (`--policy`), else `$XSPLICE_POLICY`,
 * else the default path, which alone may be missing (no policy: undefined).
 */
export function loadPolicyFile(
  explicit?: string,
  env: NodeJS.ProcessEnv = process.env,
): PolicyFile | undefined {
  const named = explicit ?? (env[POLICY_ENV] ? env[POLICY_ENV] : undefined);
  if (named !== undefined) return readPolicyFile(named);
  try {
    readFileSync(DEFAULT_POLICY_PATH);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
  }
  return readPolicyFile(DEFAULT_POLICY_PATH);
}

function sameKey(a: TrustedKey, b: TrustedKey): boolean {
  return Buffer.from(a.keyId).equals(Buffer.from(b.keyId));
}

function flagMaxSize(input: CommandInput): number | undefined {
  const v = input.values["max-size"];
  if (v === undefined) return undefined;
  const n = Number(v);
  if (typeof v !== "string" || !/^\d+$/.test(v) || !Number.isSafeInteger(n) || n <= 0)
    throw new XspliceError("EINVAL", `--max-size ${String(v)} is not a positive integer`);
  return n;
}

/**
 * The policy for an uploading command: the policy file's (see `loadPolicyFile`)
 * made stricter by the command's flags (POLICY_OPTIONS). Every command that
 * uploads calls this, so none can bypass the file (SPEC §9).
 */
export function uploadPolicy(input: CommandInput, env: NodeJS.ProcessEnv = process.env): UploadPolicy {
  const p = input.values["policy"];
  const file = loadPolicyFile(typeof p === "string" ? p : undefined, env);
  const v = input.values["trusted-key"];
  const flagFiles = v === undefined ? [] : (Array.isArray(v) ? v : [v]).map(String);
  const flagKeys = flagFiles.map((f) =>
    readKey(f, (problem, cause) => new XspliceError("EINVAL", `--trusted-key: ${problem}`, {}, { cause })),
  );
  let trustedKeys: TrustedKey[] = file?.trustedKeys ?? [];
  if (flagKeys.length > 0) {
    if (file && file.trustedKeys.length > 0) {
      // Narrowing only: a flag may pick among the file's keys, never trust one it does not.
      for (const [i, k] of flagKeys.entries())
        if (!file.trustedKeys.some((t) => sameKey(t, k)))
          throw new XspliceError(
            "EINVAL",
            `--trusted-key ${flagFiles[i]} is not a trusted key of policy ${file.path} (flags cannot widen the policy)`,
          );
    }
    trustedKeys = flagKeys;
  }
  const flagMax = flagMaxSize(input);
  const limits = [file?.maxPayloadSize, flagMax].filter((x): x is number => x !== undefined);
  return {
    requireSignature: (file?.requireSignature ?? false) || input.values["require-signature"] === true,
    trustedKeys,
    maxSize: limits.length > 0 ? Math.min(...limits) : DEFAULT_MAX_PAYLOAD_SIZE,
    ...(file ? { file: file.path } : {}),
  };
}
