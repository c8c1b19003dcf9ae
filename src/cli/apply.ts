/**
 * `xsplice apply PID NAME [--nodeps] [--timeout MS]` (SPEC §5, §10), and the
 * pieces `revert`, `replace` and `load` share: option parsing, the result
 * line with the stop window, warnings on stderr.
 */
import { checkPid } from "../core/api.ts";
import { type ActionResult, performAction } from "../core/execute.ts";
import { XspliceError } from "../errors.ts";
import type { Command, CommandInput, CommandResult } from "./command.ts";
import { printable } from "./printable.ts";

/** SPEC §10 error lines name the operation, the payload and the process: `apply fix-1 in 4242`. */
export function describeAction(op: string, pid: string | undefined, name: string | undefined): string {
  return [op, name, pid === undefined ? undefined : `in ${pid}`].filter((x) => x !== undefined).join(" ");
}

/** `--timeout MS`: a non-negative integer number of milliseconds (SPEC §5 default 30). */
export function timeoutOf(input: CommandInput): number | undefined {
  const v = input.values["timeout"];
  if (v === undefined) return undefined;
  const n = Number(v);
  if (typeof v !== "string" || !/^\d+$/.test(v) || !Number.isSafeInteger(n))
    throw new XspliceError("EINVAL", `--timeout ${String(v)} is not a number of milliseconds`);
  return n;
}

/** Default of `--retry-for`: long enough to ride out a busy moment of the host, short for a script. */
export const DEFAULT_RETRY_MS = 5000;

/** The options every action command takes besides its own. */
export const ACTION_OPTIONS = { timeout: { type: "string" }, "retry-for": { type: "string" } } as const;

/**
 * `--retry-for DURATION`: how long an action that failed with `EBUSY` is tried
 * again (`5s`, `500ms`, `2000` for ms; `0` disables). Default 5 s.
 */
export function retryForOf(input: CommandInput): number {
  const v = input.values["retry-for"];
  if (v === undefined) return DEFAULT_RETRY_MS;
  const m = typeof v === "string" ? /^(\d+)(ms|s)?$/.exec(v) : null;
  if (!m)
    throw new XspliceError(
      "EINVAL",
      `--retry-for ${JSON.stringify(String(v))} is not a duration (e.g. 5s, 500ms, 0)`,
    );
  const n = Number(m[1]) * (m[2] === "s" ? 1000 : 1);
  if (!Number.isSafeInteger(n)) throw new XspliceError("EINVAL", `--retry-for ${v} is too long`);
  return n;
}

/** The JSON document and text line of an action; warnings also go to stderr in text mode. */
export function actionOutput(pid: number, r: ActionResult, json: boolean): CommandResult {
  if (!json) for (const w of r.warnings) process.stderr.write(`xsplice: warning: ${printable(w)}\n`);
  const done =
    r.kind === "noop"
      ? `${r.name} is already applied in ${pid}`
      : `${r.cmd === "APPLY" ? "applied" : r.cmd === "REVERT" ? "reverted" : "replaced with"} ${r.name} in ${pid}: state ${r.state}, threads stopped ${r.stopWindowMs.toFixed(3)} ms for the writes${r.pause ? ` (${r.pause.totalMs.toFixed(3)} ms in ${r.pause.stops} stops in all)` : ""}`;
  return {
    json: {
      pid,
      name: r.name,
      action: r.cmd,
      state: r.state,
      rc: 0,
      stopWindowMs: r.stopWindowMs,
      pause: r.pause,
      attempts: r.attempts,
      tries: r.tries ?? 1,
      warnings: r.warnings,
    },
    text: done,
  };
}

/** `xsplice apply`. */
export const applyCommand: Command = {
  name: "apply",
  usage: "apply PID NAME [--nodeps] [--timeout MS] [--retry-for DURATION]",
  summary: "patch a CHECKED payload's functions in one safe stop (state APPLIED)",
  options: { nodeps: { type: "boolean" }, ...ACTION_OPTIONS },
  positionals: [2, 2],
  describe: (p) => describeAction("apply", p[0], p[1]),
  async run(input) {
    const [pidText, name] = input.positionals as [string, string];
    const pid = checkPid(pidText);
    const r = performAction(pid, name, "APPLY", {
      timeoutMs: timeoutOf(input),
      retryForMs: retryForOf(input),
      flags: { nodeps: input.values["nodeps"] === true },
    });
    return actionOutput(pid, r, input.json);
  },
};
