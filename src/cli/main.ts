/**
 * `xsplice` command line (SPEC §10): option parsing, output and exit status for
 * every sub-command. Exit status: 0 success, 2 worth retrying (EAGAIN, EBUSY), 1 otherwise.
 */
import { parseArgs } from "node:util";
import { ERRNO, isRetryable, XspliceError } from "../errors.ts";
import type { Command } from "./command.ts";
import { commands } from "./commands.ts";
import { isPtraceRefusal, ptraceFacts, ptraceHint } from "./permission-hint.ts";
import { printable } from "./printable.ts";
import { packageVersion } from "./version.ts";

function usage(): string {
  const lines = ["usage: xsplice COMMAND [ARGS] [--json]", "", "commands:"];
  for (const c of commands) {
    // A usage too long for the column gets the summary on a line of its own.
    if (c.usage.length > 44) lines.push(`  ${c.usage}`, `  ${"".padEnd(44)} ${c.summary}`);
    else lines.push(`  ${c.usage.padEnd(44)} ${c.summary}`);
  }
  return lines.join("\n");
}

function fail(op: string, err: unknown, json: boolean): number {
  let e =
    err instanceof XspliceError
      ? err
      : new XspliceError("EINVAL", err instanceof Error ? err.message : String(err));
  if (!(err instanceof XspliceError) && process.env["XSPLICE_DEBUG"]) console.error(err);
  if (isPtraceRefusal(e)) {
    e = new XspliceError(e.errno, `${e.message} (${ptraceHint(ptraceFacts())})`, e.where, { cause: e });
  }
  if (json) {
    process.stdout.write(
      `${JSON.stringify({ error: e.errno, errno: ERRNO[e.errno], message: e.message })}\n`,
    );
  } else {
    // Messages may quote what a target or a file holds (paths, names): one line, no terminal escapes.
    process.stderr.write(`xsplice: ${printable(op)}: ${e.errno}: ${printable(e.message)}\n`);
  }
  return isRetryable(e.errno) ? 2 : 1;
}

/**
 * parseArgs's message in our words where its own is unclear: for an unknown option Node 20
 * suggests `'-- "-5"` with an unbalanced quote.
 */
function parseError(err: unknown): string {
  const e = err as { code?: string; message?: string };
  const unknown = /^Unknown option '(.*?)'\./.exec(e.message ?? "");
  if (e.code === "ERR_PARSE_ARGS_UNKNOWN_OPTION" && unknown) {
    return `unknown option '${unknown[1]}' (an argument that starts with '-' goes after '--')`;
  }
  return e.message ?? String(err);
}

/** Run the command line `argv` (without node and script); returns the exit status. */
export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === "--help" || name === "-h" || name === "help") {
    process.stdout.write(`${usage()}\n`);
    return name === undefined ? 1 : 0;
  }
  if (name === "--version" || name === "-V") {
    process.stdout.write(`xsplice ${packageVersion()}\n`);
    return 0;
  }
  const json = rest.includes("--json");
  const command: Command | undefined = commands.find((c) => c.name === name);
  if (!command)
    return fail(name, new XspliceError("EINVAL", `unknown command '${name}' (see xsplice --help)`), json);
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({
      args: rest,
      allowPositionals: true,
      strict: true,
      options: { ...command.options, json: { type: "boolean" }, help: { type: "boolean", short: "h" } },
    });
  } catch (err) {
    return fail(
      name,
      new XspliceError("EINVAL", `${parseError(err)}; usage: xsplice ${command.usage}`),
      json,
    );
  }
  if (parsed.values["help"]) {
    process.stdout.write(`usage: xsplice ${command.usage}\n${command.summary}\n`);
    return 0;
  }
  const [min, max] = command.positionals;
  const op = command.describe(parsed.positionals, parsed.values);
  if (parsed.positionals.length < min || parsed.positionals.length > max) {
    return fail(
      op,
      new XspliceError("EINVAL", `wrong number of arguments; usage: xsplice ${command.usage}`),
      json,
    );
  }
  try {
    const result = await command.run({ positionals: parsed.positionals, values: parsed.values, json });
    process.stdout.write(
      json
        ? `${JSON.stringify(result.json)}\n`
        : result.text.endsWith("\n") || result.text === ""
          ? result.text
          : `${result.text}\n`,
    );
    return result.status ?? 0;
  } catch (err) {
    return fail(op, err, json);
  }
}
