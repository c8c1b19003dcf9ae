/** `xsplice unload PID NAME` (SPEC §5, §10): free a CHECKED payload's memory and registry entry. */
import { action, checkPid } from "../core/api.ts";
import { XspliceError } from "../errors.ts";
import { ALL_OPTIONS, checkNotAll, isAll, unloadAll } from "./all.ts";
import type { Command } from "./command.ts";

/** SPEC §10 error lines name the operation, the payload and the process: `unload fix-1 in 4242`. */
function describeOp(op: string, pid: string | undefined, name: string | undefined): string {
  return [op, name, pid === undefined ? undefined : `in ${pid}`].filter((x) => x !== undefined).join(" ");
}

/** `xsplice unload`. */
export const unloadCommand: Command = {
  name: "unload",
  usage: "unload PID NAME | --all NAME [-j N]",
  summary: "remove a CHECKED payload and free its memory",
  options: { ...ALL_OPTIONS },
  positionals: [1, 2],
  describe: (p, v) =>
    isAll({ values: v }) ? `unload --all ${p[0] ?? ""}` : describeOp("unload", p[0], p[1]),
  async run(input) {
    if (isAll(input)) {
      if (input.positionals.length !== 1)
        throw new XspliceError("EINVAL", "wrong number of arguments; usage: xsplice unload --all NAME");
      return unloadAll(input, input.positionals[0]!);
    }
    checkNotAll(input);
    if (input.positionals.length !== 2)
      throw new XspliceError("EINVAL", `wrong number of arguments; usage: xsplice ${unloadCommand.usage}`);
    const [pidText, name] = input.positionals as [string, string];
    const pid = checkPid(pidText);
    await action(pid, name, "UNLOAD");
    return { json: { pid, name, unloaded: true }, text: `unloaded ${name} from ${pid}` };
  },
};
