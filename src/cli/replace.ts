/**
 * `xsplice replace PID NAME [--timeout MS]` (SPEC §5, §10): revert every
 * applied payload of the object and apply NAME, in one stop.
 */
import { checkPid } from "../core/api.ts";
import { performAction } from "../core/execute.ts";
import { ACTION_OPTIONS, actionOutput, describeAction, retryForOf, timeoutOf } from "./apply.ts";
import type { Command } from "./command.ts";

/** `xsplice replace`. */
export const replaceCommand: Command = {
  name: "replace",
  usage: "replace PID NAME [--timeout MS] [--retry-for DURATION]",
  summary: "revert every applied payload of the object and apply NAME, in one stop",
  options: { ...ACTION_OPTIONS },
  positionals: [2, 2],
  describe: (p) => describeAction("replace", p[0], p[1]),
  async run(input) {
    const [pidText, name] = input.positionals as [string, string];
    const pid = checkPid(pidText);
    return actionOutput(
      pid,
      performAction(pid, name, "REPLACE", { timeoutMs: timeoutOf(input), retryForMs: retryForOf(input) }),
      input.json,
    );
  },
};
