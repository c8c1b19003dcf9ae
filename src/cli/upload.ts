/** `xsplice upload PID NAME FILE` (SPEC §2, §10): load and check a payload in a live process. */
import { checkPid, upload } from "../core/api.ts";
import { readPayloadFile } from "../payload/file.ts";
import type { Command } from "./command.ts";
import { POLICY_OPTIONS, POLICY_USAGE, uploadPolicy } from "./policy.ts";

/** SPEC §10 error lines name the operation, the payload and the process: `upload fix-1 in 4242`. */
function describeOp(op: string, pid: string | undefined, name: string | undefined): string {
  return [op, name, pid === undefined ? undefined : `in ${pid}`].filter((x) => x !== undefined).join(" ");
}

/** `xsplice upload`. */
export const uploadCommand: Command = {
  name: "upload",
  usage: `upload PID NAME FILE ${POLICY_USAGE}`,
  summary: "load and check a payload in a process (state CHECKED)",
  options: { ...POLICY_OPTIONS },
  positionals: [3, 3],
  describe: (p) => describeOp("upload", p[0], p[1]),
  async run(input) {
    const [pidText, name, file] = input.positionals as [string, string, string];
    const pid = checkPid(pidText);
    // SPEC §9: the policy (file and flags) is settled before the payload or the process is read.
    const policy = uploadPolicy(input);
    const bytes = readPayloadFile(file, policy.maxSize);
    const rec = await upload(pid, name, bytes, policy);
    const json = {
      pid,
      name: rec.name,
      state: rec.state,
      rc: rec.rc,
      buildId: rec.buildId,
      object: rec.object.path,
      regions: rec.regions,
      funcs: rec.funcs.map((f) => ({ name: f.name, oldAddr: f.oldAddr, newAddr: f.newAddr })),
    };
    const regions = rec.regions.map((r) => `${r.kind} ${r.addr}+${r.size}`).join(", ");
    return {
      json,
      text: `uploaded ${rec.name} into ${pid}: ${rec.funcs.length} function(s) for ${rec.object.path}; ${regions}; state ${rec.state}`,
    };
  },
};
