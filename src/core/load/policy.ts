/**
 * The upload policy (SPEC §9): whether signatures are required, which keys
 * are trusted, how large a payload may be — and where it comes from. The
 * system policy `/etc/xsplice/policy.json` is the floor: a policy file named
 * by `--policy` or `$XSPLICE_POLICY`, command-line flags and a library
 * caller's options can only tighten it (issue #11 item 11: a `sudo xsplice`
 * rule must not be undone by `--policy {}`). Every UPLOAD path — the command
 * line and the library's `upload()`/`load()` — takes its policy from here.
 *
 * Fail closed: a policy or key file that exists but cannot be read, a
 * dangling symlink at the system path, or a file (or its directory) that
 * someone other than root or the user running xsplice could rewrite, is
 * `EINVAL` naming it — never "no policy".
 */
import { closeSync, lstatSync, realpathSync, type Stats, statSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { XspliceError } from "../../errors.ts";
import { DEFAULT_MAX_PAYLOAD_SIZE, keyIdOf, type TrustedKey } from "../../payload/index.ts";
import { openRegularFile, readOpened } from "../../regular-file.ts";

/** The system policy: always in force when it exists. */
export const DEFAULT_POLICY_PATH = "/etc/xsplice/policy.json";

/** The environment variable that names another policy file (which can only tighten the system one). */
export const POLICY_ENV = "XSPLICE_POLICY";

/** Largest policy or key file read. */
const MAX_POLICY_FILE = 1024 * 1024;

/** The policy an upload runs under (SPEC §2 size, §9 signatures). */
export interface UploadPolicy {
  requireSignature: boolean;
  trustedKeys: TrustedKey[];
  maxSize: number;
  /** The policy files that contributed, system first (for messages). */
  files: string[];
}

/** A policy file's contents, keys read and identified. */
export interface PolicyFile {
  path: string;
  requireSignature: boolean;
  /** Trusted keys with the path each came from. */
  trustedKeys: (TrustedKey & { path: string })[];
  maxPayloadSize?: number;
}

/** What a caller may add to the policy in force (flags, library options): it only tightens. */
export interface PolicyTightening {
  requireSignature?: boolean;
  /** Keys to trust: where the policy in force lists keys, these must be among them. */
  trustedKeys?: readonly TrustedKey[];
  maxSize?: number;
  /** Names the keys in messages (a flag's file name); default the key id. */
  keyNames?: readonly string[];
  /** What the tightening is called in messages: `--trusted-key`, `trustedKeys`. */
  what?: string;
}

/** Node and JSON messages may hold newlines; SPEC §10 errors are one line. */
function oneLine(s: string): string {
  return s.replace(/\r?\n/g, "\\n");
}

function fsReason(err: unknown): string {
  if (err instanceof XspliceError) return err.message;
  const code = (err as NodeJS.ErrnoException).code;
  if (code === "ENOENT") return "no such file";
  if (code === "EACCES" || code === "EPERM") return "permission denied";
  if (code === "EISDIR") return "is a directory";
  if (code === "ELOOP") return "too many symbolic links";
  return oneLine((err as Error).message);
}

function policyError(path: string, problem: string, cause?: unknown): XspliceError {
  return new XspliceError("EINVAL", `policy ${path}: ${problem}`, {}, cause === undefined ? {} : { cause });
}

function euid(): number {
  return process.geteuid?.() ?? 0;
}

/**
 * Who could rewrite a file with these stats, other than root and us: its
 * owner when that is someone else, its group when group-writable (and not
 * root's), anyone when world-writable. A directory with the sticky bit (`/tmp`)
 * lets others add files but not replace ours, so its write bits do not count.
 */
function writableByOthers(st: Stats, isDir: boolean): string | undefined {
  const me = euid();
  if (st.uid !== 0 && st.uid !== me) return `owned by uid ${st.uid}`;
  if (isDir && (st.mode & 0o1000) !== 0) return undefined;
  if ((st.mode & 0o002) !== 0) return "writable by everyone";
  if ((st.mode & 0o020) !== 0 && st.gid !== 0) return `writable by group ${st.gid}`;
  return undefined;
}

/**
 * Read a policy or key file, fail closed: a regular file (checked on the
 * descriptor, bounded), which neither it nor its directory lets anyone but
 * root or us rewrite. `fail` words the error.
 */
function readTrustedFile(
  path: string,
  what: string,
  fail: (problem: string, cause?: unknown) => XspliceError,
) {
  const ours = new WeakSet<object>();
  const refuse = (problem: string) => {
    const e = fail(problem);
    ours.add(e);
    return e;
  };
  let opened: ReturnType<typeof openRegularFile> | undefined;
  try {
    const real = realpathSync(path);
    opened = openRegularFile(real, what);
    if (opened.stat.size > MAX_POLICY_FILE)
      throw refuse(`${what} is ${opened.stat.size} bytes, above ${MAX_POLICY_FILE}`);
    const who = writableByOthers(opened.stat, false);
    if (who) throw refuse(`${what} is ${who}: refused (only root or uid ${euid()} may be able to change it)`);
    const dir = dirname(real);
    const dirWho = writableByOthers(statSync(dir), true);
    if (dirWho) throw refuse(`the directory ${dir} of ${what} is ${dirWho}: refused`);
    return new TextDecoder().decode(readOpened(opened, opened.stat.size, real));
  } catch (err) {
    if (ours.has(err as object)) throw err;
    throw fail(`cannot read ${what}: ${fsReason(err)}`, err);
  } finally {
    if (opened) closeSync(opened.fd);
  }
}

/** A PEM public (or private) key file as a trusted key; `fail` words the error. */
export function readKeyFile(
  file: string,
  fail: (problem: string, cause?: unknown) => XspliceError,
): TrustedKey {
  const pem = readTrustedFile(file, `trusted key ${file}`, fail);
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
 * without any trusted key, a file others could rewrite — is a one-line
 * `EINVAL` naming the file.
 */
export function readPolicyFile(path: string): PolicyFile {
  const fail = (problem: string, cause?: unknown) => policyError(path, problem, cause);
  const text = readTrustedFile(path, "the file", (problem, cause) =>
    policyError(path, problem.replace(/^cannot read the file: /, "cannot read: "), cause),
  );
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    throw fail(`not valid JSON: ${oneLine((err as Error).message)}`, err);
  }
  if (typeof doc !== "object" || doc === null || Array.isArray(doc)) throw fail("not a JSON object");
  const obj = doc as Record<string, unknown>;
  for (const k of Object.keys(obj))
    if (!FIELDS.has(k))
      throw fail(`unknown field '${k}' (known: requireSignature, trustedKeys, maxPayloadSize)`);
  const req = obj["requireSignature"] ?? false;
  if (typeof req !== "boolean") throw fail("requireSignature must be true or false");
  const keys = obj["trustedKeys"] ?? [];
  if (!Array.isArray(keys) || keys.some((k) => typeof k !== "string" || k === ""))
    throw fail("trustedKeys must be a list of PEM file paths");
  const max = obj["maxPayloadSize"];
  if (max !== undefined && (typeof max !== "number" || !Number.isSafeInteger(max) || max <= 0))
    throw fail("maxPayloadSize must be a positive integer number of bytes");
  if (req && keys.length === 0) throw fail("requireSignature is true but trustedKeys lists no key");
  return {
    path,
    requireSignature: req,
    trustedKeys: (keys as string[]).map((k) => {
      const file = resolve(dirname(path), k);
      return { ...readKeyFile(file, fail), path: file };
    }),
    ...(max === undefined ? {} : { maxPayloadSize: max }),
  };
}

/**
 * The system policy at `path`, or undefined when nothing is there at all.
 * Anything else that is not a good policy file — a dangling symlink, a file
 * we may not read — is `EINVAL`: the system policy never silently vanishes.
 */
export function readSystemPolicy(path = DEFAULT_POLICY_PATH): PolicyFile | undefined {
  try {
    lstatSync(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw policyError(path, `cannot read: ${fsReason(err)}`, err);
  }
  try {
    statSync(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT")
      throw policyError(path, "is a dangling symbolic link: refused (remove it for no policy)", err);
  }
  return readPolicyFile(path);
}

function sameKey(a: TrustedKey, b: TrustedKey): boolean {
  return Buffer.from(a.keyId).equals(Buffer.from(b.keyId));
}

/** A policy file as a policy. */
function fromFile(file: PolicyFile | undefined): UploadPolicy {
  return {
    requireSignature: file?.requireSignature ?? false,
    trustedKeys: file?.trustedKeys ?? [],
    maxSize: file?.maxPayloadSize ?? DEFAULT_MAX_PAYLOAD_SIZE,
    files: file ? [file.path] : [],
  };
}

/**
 * `base` made stricter by `t`: a signature required when either requires it;
 * the smaller size limit; trusted keys narrowed to `t`'s — each of which must
 * be trusted by `base` already when `base` trusts any (`EINVAL` naming it:
 * nothing widens the policy).
 */
export function tightenPolicy(
  base: UploadPolicy,
  t: PolicyTightening,
  files: readonly string[] = [],
): UploadPolicy {
  let trustedKeys = base.trustedKeys;
  if (t.trustedKeys !== undefined && t.trustedKeys.length > 0) {
    if (base.trustedKeys.length > 0)
      for (const [i, k] of t.trustedKeys.entries())
        if (!base.trustedKeys.some((b) => sameKey(b, k)))
          throw new XspliceError(
            "EINVAL",
            `${t.what ?? "trustedKeys"} ${t.keyNames?.[i] ?? Buffer.from(k.keyId).toString("hex")} is not a trusted key of policy ${base.files.join(" + ")} (nothing can widen the policy)`,
          );
    trustedKeys = [...t.trustedKeys];
  }
  return {
    requireSignature: base.requireSignature || t.requireSignature === true,
    trustedKeys,
    maxSize: Math.min(base.maxSize, t.maxSize ?? base.maxSize),
    files: [...base.files, ...files],
  };
}

/**
 * The policy in force: the system policy (`systemPath`, default
 * `/etc/xsplice/policy.json`), tightened by the policy file `named` names
 * (`--policy`, else `$XSPLICE_POLICY`) when there is one.
 */
export function policyInForce(named?: string, systemPath = DEFAULT_POLICY_PATH): UploadPolicy {
  const system = fromFile(readSystemPolicy(systemPath));
  if (named === undefined || resolve(named) === resolve(systemPath)) return system;
  const file = readPolicyFile(named);
  return tightenPolicy(
    system,
    {
      requireSignature: file.requireSignature,
      trustedKeys: file.trustedKeys,
      keyNames: file.trustedKeys.map((k) => k.path),
      what: `the key of ${file.path}`,
      ...(file.maxPayloadSize === undefined ? {} : { maxSize: file.maxPayloadSize }),
    },
    [file.path],
  );
}
