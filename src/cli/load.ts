/**
 * `xsplice load PID FILE [--name NAME] [--nodeps] [--timeout MS]` (SPEC §10):
 * upload + apply; when the apply fails the payload is unloaded again, so a
 * failed load leaves nothing behind. NAME defaults to the file's base name
 * without its extension. The upload runs under the same policy as `upload`
 * (SPEC §9, `policy.ts`): `load` is no way around a signature requirement.
 */
import { basename, extname } from "node:path";
import { action, checkPid, upload } from "../core/api.ts";
import { performAction } from "../core/execute.ts";
import { actionOutput, describeAction, timeoutOf } from "./apply.ts";
import type { Command } from "./command.ts";
import { readPayloadFile } from "./inspect.ts";
import { POLICY_OPTIONS, POLICY_USAGE, uploadPolicy } from "./policy.ts";

/** NAME for `load`: the file's base name without its extension. */
export function defaultName(file: string): string {
  return basename(file, extname(file));
}

/** `xsplice load`. */
export const loadCommand: Command = {
  name: "load",
  usage: `load PID FILE [--name NAME] [--nodeps] [--timeout MS] ${POLICY_USAGE}`,
  summary: "upload and apply a payload; unload it again if the apply fails",
  options: {
    name: { type: "string" },
    nodeps: { type: "boolean" },
    timeout: { type: "string" },
    ...POLICY_OPTIONS,
  },
  positionals: [2, 2],
  describe: (p, v) =>
    describeAction(
      "load",
      p[0],
      typeof v["name"] === "string" ? v["name"] : p[1] === undefined ? undefined : defaultName(p[1]),
    ),
  async run(input) {
    const [pidText, file] = input.positionals as [string, string];
    const pid = checkPid(pidText);
    const name = typeof input.values["name"] === "string" ? input.values["name"] : defaultName(file);
    const timeoutMs = timeoutOf(input);
    const policy = uploadPolicy(input);
    const bytes = readPayloadFile(file, policy.maxSize);
    await upload(pid, name, bytes, policy);
    try {
      const r = performAction(pid, name, "APPLY", {
        timeoutMs,
        flags: { nodeps: input.values["nodeps"] === true },
      });
      return actionOutput(pid, r, input.json);
    } catch (err) {
      try {
        await action(pid, name, "UNLOAD");
      } catch {
        // The apply's error is the one to report; an unload failure leaves a CHECKED payload.
      }
      throw err;
    }
  },
};
