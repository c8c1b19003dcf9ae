/**
 * The shape every `xsplice` sub-command has, so that `main.ts` can parse
 * options, print results and map errors to exit codes in one place (SPEC §10).
 */
import type { ParseArgsConfig } from "node:util";
import { XspliceError } from "../errors.ts";

/** What a command returns: a JSON document for `--json`, and the text a person reads. */
export interface CommandResult {
  json: unknown;
  text: string;
  /** Exit status when not 0 although a result is printed (`--all` with failures, SPEC §14). */
  status?: number;
}

/** Parsed command line handed to a command. */
export interface CommandInput {
  positionals: string[];
  values: Record<string, string | boolean | (string | boolean)[] | undefined>;
  json: boolean;
}

/** One sub-command of the CLI. */
export interface Command {
  name: string;
  /** One-line usage, e.g. `inspect FILE`. */
  usage: string;
  summary: string;
  /** Options besides the global `--json` and `--help`. */
  options: NonNullable<ParseArgsConfig["options"]>;
  /** Fixed number of positionals, or [min, max]. */
  positionals: [number, number];
  /** What the error line calls this operation, given the positionals (e.g. `apply fix-1 in 4242`). */
  describe(positionals: string[], values: CommandInput["values"]): string;
  run(input: CommandInput): Promise<CommandResult>;
}

/** Every non-empty value given for option `name` (a repeatable option gives several). */
export function optionValues(input: CommandInput, name: string): string[] {
  const v = input.values[name];
  if (v === undefined) return [];
  return (Array.isArray(v) ? v : [v]).filter((x): x is string => typeof x === "string" && x !== "");
}

/** The one value of a required option; `EINVAL` naming `usage` when it is missing or repeated. */
export function oneOption(input: CommandInput, name: string, usage: string): string {
  const v = optionValues(input, name);
  if (v.length !== 1) throw new XspliceError("EINVAL", `missing ${usage}`);
  return v[0]!;
}
