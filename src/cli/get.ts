/** `xsplice get PID NAME` (SPEC §5, §10): a payload's state and rc, read without stopping the process. */
import { checkPid, get, rcName } from "../core/api.ts";
import type { Command } from "./command.ts";

/** SPEC §10 error lines name the operation, the payload and the process: `get fix-1 in 4242`. */
function describeOp(op: string, pid: string | undefined, name: string | undefined): string {
  return [op, name, pid === undefined ? undefined : `in ${pid}`].filter((x) => x !== undefined).join(" ");
}

/** `xsplice get`. */
export const getCommand: Command = {
  name: "get",
  usage: "get PID NAME",
  summary: "state and rc of a payload",
  options: {},
  positionals: [2, 2],
  describe: (p) => describeOp("get", p[0], p[1]),
  async run(input) {
    const [pidText, name] = input.positionals as [string, string];
    const s = await get(checkPid(pidText), name);
    return { json: s, text: `${s.name}: ${s.state} rc=${rcName(s.rc)}` };
  },
};
