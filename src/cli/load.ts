/**
 * `xsplice load PID FILE [--name NAME] [--nodeps] [--timeout MS]` (SPEC §10):
 * upload + apply in one hold of the process (`api.load`); when the apply fails
 * the payload is unloaded again, so a failed load leaves nothing behind. NAME defaults to the file's base name
 * without its extension. The upload runs under the same policy as `upload`
 * (SPEC §9, `policy.ts`): `load` is no way around a signature requirement.
 */
import { basename, extname } from "node:path";
import { checkPid, load } from "../core/api.ts";
import { XspliceError } from "../errors.ts";
import { readPayloadFile } from "../payload/file.ts";
import { ALL_OPTIONS, checkNotAll, isAll, loadAll } from "./all.ts";
import { ACTION_OPTIONS, actionOutput, describeAction, retryForOf, timeoutOf } from "./apply.ts";
import type { Command } from "./command.ts";
import { POLICY_OPTIONS, POLICY_USAGE, uploadPolicy } from "./policy.ts";

/** NAME for `load`: the file's base name without its extension. */
export function defaultName(file: string): string {
  return basename(file, extname(file));
}

function usageError(form: string): XspliceError {
  return new XspliceError("EINVAL", `wrong number of arguments; usage: xsplice ${form} ...`);
}

/** `xsplice load`. */
export const loadCommand: Command = {
  name: "load",
  usage: `load PID FILE | --all FILE [-j N] [--name NAME] [--nodeps] [--timeout MS] [--retry-for DURATION] ${POLICY_USAGE}`,
  summary: "upload and apply a payload; unload it again if the apply fails",
  options: {
    name: { type: "string" },
    nodeps: { type: "boolean" },
    ...ACTION_OPTIONS,
    ...POLICY_OPTIONS,
    ...ALL_OPTIONS,
  },
  positionals: [1, 2],
  describe: (p, v) =>
    isAll({ values: v })
      ? `load --all ${typeof v["name"] === "string" ? v["name"] : p[0] === undefined ? "" : defaultName(p[0])}`
      : describeAction(
          "load",
          p[0],
          typeof v["name"] === "string" ? v["name"] : p[1] === undefined ? undefined : defaultName(p[1]),
        ),
  async run(input) {
    if (isAll(input)) {
      const [file] = input.positionals as [string];
      if (input.positionals.length !== 1) throw usageError("load --all FILE");
      return loadAll(
        input,
        file,
        typeof input.values["name"] === "string" ? input.values["name"] : defaultName(file),
      );
    }
    checkNotAll(input);
    if (input.positionals.length !== 2) throw usageError("load PID FILE");
    const [pidText, file] = input.positionals as [string, string];
    const pid = checkPid(pidText);
    const name = typeof input.values["name"] === "string" ? input.values["name"] : defaultName(file);
    const timeoutMs = timeoutOf(input);
    const policy = uploadPolicy(input);
    const bytes = readPayloadFile(file, policy.maxSize);
    // Upload and apply in one hold: the pause reported counts the upload's stop too.
    const r = load(pid, name, bytes, {
      ...policy,
      timeoutMs,
      retryForMs: retryForOf(input),
      flags: { nodeps: input.values["nodeps"] === true },
    });
    return actionOutput(pid, r, input.json);
  },
};
