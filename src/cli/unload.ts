/** `xsplice unload PID NAME` (SPEC §5, §10): free a CHECKED payload's memory and registry entry. */
import { action, checkPid } from "../core/api.ts";
import type { Command } from "./command.ts";

/** SPEC §10 error lines name the operation, the payload and the process: `unload fix-1 in 4242`. */
function describeOp(op: string, pid: string | undefined, name: string | undefined): string {
  return [op, name, pid === undefined ? undefined : `in ${pid}`].filter((x) => x !== undefined).join(" ");
}

/** `xsplice unload`. */
export const unloadCommand: Command = {
  name: "unload",
  usage: "unload PID NAME",
  summary: "remove a CHECKED payload and free its memory",
  options: {},
  positionals: [2, 2],
  describe: (p) => describeOp("unload", p[0], p[1]),
  async run(input) {
    const [pidText, name] = input.positionals as [string, string];
    const pid = checkPid(pidText);
    await action(pid, name, "UNLOAD");
    return { json: { pid, name, unloaded: true }, text: `unloaded ${name} from ${pid}` };
  },
};
