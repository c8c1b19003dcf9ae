/**
 * The upload policy of the command line (SPEC §9): one place where every
 * command that uploads (`upload`, `load`) learns whether signatures are
 * required, which keys are trusted and how large a payload may be, so that no
 * upload path can skip it. Reading and combining policy files is
 * `core/load/policy.ts`, which the library's `upload()` uses as well.
 *
 * The file is JSON: `{"requireSignature": bool, "trustedKeys": ["key.pem", ...],
 * "maxPayloadSize": bytes}` (every field optional, no others; relative key
 * paths are relative to the file). The system policy `/etc/xsplice/policy.json`
 * is always in force when it exists; `--policy FILE`, else `$XSPLICE_POLICY`,
 * names a further file that can only tighten it. A named file that cannot be
 * read or parsed, a dangling symlink at the system path, or a policy or key
 * file someone other than root (or the user running xsplice) could rewrite is
 * `EINVAL` naming it: a policy that was meant to hold never silently vanishes.
 *
 * Flags can only make it stricter too: `--require-signature` turns the
 * requirement on, `--trusted-key` narrows the trusted keys to the ones given
 * (a key the policy does not trust is `EINVAL`), `--max-size` above the
 * policy's limit leaves the policy's limit.
 */

import {
  DEFAULT_POLICY_PATH,
  POLICY_ENV,
  type PolicyFile,
  policyInForce,
  readKeyFile,
  readPolicyFile,
  tightenPolicy,
  type UploadPolicy,
} from "../core/load/policy.ts";
import { XspliceError } from "../errors.ts";
import type { Command, CommandInput } from "./command.ts";

export { DEFAULT_POLICY_PATH, POLICY_ENV, type PolicyFile, readPolicyFile, type UploadPolicy };

/** The options every uploading command declares, so `main.ts` parses them the same way. */
export const POLICY_OPTIONS: Command["options"] = {
  policy: { type: "string" },
  "require-signature": { type: "boolean" },
  "trusted-key": { type: "string", multiple: true },
  "max-size": { type: "string" },
};

/** The usage text of POLICY_OPTIONS. */
export const POLICY_USAGE = "[--policy FILE] [--require-signature] [--trusted-key PEM]... [--max-size BYTES]";

function flagMaxSize(input: CommandInput): number | undefined {
  const v = input.values["max-size"];
  if (v === undefined) return undefined;
  const n = Number(v);
  if (typeof v !== "string" || !/^\d+$/.test(v) || !Number.isSafeInteger(n) || n <= 0)
    throw new XspliceError("EINVAL", `--max-size ${String(v)} is not a positive integer`);
  return n;
}

/**
 * The policy for an uploading command: the system policy, tightened by the
 * named policy file and then by the command's flags (POLICY_OPTIONS). Every
 * command that uploads calls this, and the loader applies the system policy
 * once more, so none can bypass it (SPEC §9).
 */
export function uploadPolicy(input: CommandInput, env: NodeJS.ProcessEnv = process.env): UploadPolicy {
  const p = input.values["policy"];
  const named = typeof p === "string" ? p : env[POLICY_ENV] ? env[POLICY_ENV] : undefined;
  const base = policyInForce(named);
  const v = input.values["trusted-key"];
  const flagFiles = v === undefined ? [] : (Array.isArray(v) ? v : [v]).map(String);
  const flagKeys = flagFiles.map((f) =>
    readKeyFile(
      f,
      (problem, cause) => new XspliceError("EINVAL", `--trusted-key: ${problem}`, {}, { cause }),
    ),
  );
  const flagMax = flagMaxSize(input);
  return tightenPolicy(base, {
    requireSignature: input.values["require-signature"] === true,
    trustedKeys: flagKeys,
    keyNames: flagFiles,
    what: "--trusted-key",
    ...(flagMax === undefined ? {} : { maxSize: flagMax }),
  });
}
