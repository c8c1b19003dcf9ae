/** `xsplice revert PID NAME [--timeout MS]` (SPEC §5, §10): undo the most recent payload of its object. */
import { checkPid } from "../core/api.ts";
import { performAction } from "../core/execute.ts";
import { ACTION_OPTIONS, actionOutput, describeAction, retryForOf, timeoutOf } from "./apply.ts";
import type { Command } from "./command.ts";

/** `xsplice revert`. */
export const revertCommand: Command = {
  name: "revert",
  usage: "revert PID NAME [--timeout MS] [--retry-for DURATION]",
  summary: "write an APPLIED payload's undo buffers back (state CHECKED)",
  options: { ...ACTION_OPTIONS },
  positionals: [2, 2],
  describe: (p) => describeAction("revert", p[0], p[1]),
  async run(input) {
    const [pidText, name] = input.positionals as [string, string];
    const pid = checkPid(pidText);
    return actionOutput(
      pid,
      performAction(pid, name, "REVERT", { timeoutMs: timeoutOf(input), retryForMs: retryForOf(input) }),
      input.json,
    );
  },
};
