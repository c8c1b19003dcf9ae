/** `xsplice revert PID NAME [--timeout MS]` (SPEC §5, §10): undo the most recent payload of its object. */
import { checkPid } from "../core/api.ts";
import { performAction } from "../core/execute.ts";
import { XspliceError } from "../errors.ts";
import { ALL_OPTIONS, checkNotAll, isAll, revertAll } from "./all.ts";
import { ACTION_OPTIONS, actionOutput, describeAction, retryForOf, timeoutOf } from "./apply.ts";
import type { Command } from "./command.ts";

/** `xsplice revert`. */
export const revertCommand: Command = {
  name: "revert",
  usage: "revert PID NAME | --all NAME [-j N] [--timeout MS] [--retry-for DURATION]",
  summary: "write an APPLIED payload's undo buffers back (state CHECKED)",
  options: { ...ACTION_OPTIONS, ...ALL_OPTIONS },
  positionals: [1, 2],
  describe: (p, v) =>
    isAll({ values: v }) ? `revert --all ${p[0] ?? ""}` : describeAction("revert", p[0], p[1]),
  async run(input) {
    if (isAll(input)) {
      if (input.positionals.length !== 1)
        throw new XspliceError("EINVAL", "wrong number of arguments; usage: xsplice revert --all NAME");
      return revertAll(input, input.positionals[0]!);
    }
    checkNotAll(input);
    if (input.positionals.length !== 2)
      throw new XspliceError("EINVAL", `wrong number of arguments; usage: xsplice ${revertCommand.usage}`);
    const [pidText, name] = input.positionals as [string, string];
    const pid = checkPid(pidText);
    return actionOutput(
      pid,
      performAction(pid, name, "REVERT", { timeoutMs: timeoutOf(input), retryForMs: retryForOf(input) }),
      input.json,
    );
  },
};
