/**
 * `xsplice diff --orig A.o --patched B.o --target ELF -o OUT
 * [--ignore-line-changes] [--verbose] [--name N]` (SPEC §13): a payload from
 * two builds of one object. `--orig`/`--patched` may be repeated, pairing in
 * order, for a program of several files. The JSON document: `{path, target,
 * buildId, funcs: [{name, status, reason}], refused: [], hooks, stats}`
 * (a refusal is an error, so `refused` of a written payload is empty).
 */
import { type DiffResult, diffObjects } from "../build/diff/index.ts";
import { XspliceError } from "../errors.ts";
import { type Command, type CommandInput, type CommandResult, oneOption, optionValues } from "./command.ts";

/** The JSON document of a diff or make (SPEC §13). */
export function diffJson(r: DiffResult): Record<string, unknown> {
  return {
    path: r.path,
    target: r.target,
    buildId: r.buildId,
    funcs: r.all
      .filter((f) => f.status === "changed" || f.status === "new")
      .map((f) => ({ name: f.name, status: f.status, reason: f.reason })),
    refused: [],
    inlined: r.inlined.map((f) => ({ name: f.name, callers: f.callers })),
    hooks: r.hooks,
    stats: r.stats,
  };
}

/** The text a person reads; `verbose` lists every function with its verdict. */
export function diffText(r: DiffResult, verbose: boolean): string {
  const lines = [`wrote ${r.path}`, `build-id: ${r.buildId}`, `target:   ${r.target}`];
  const { functions, changed, new: added, bytes } = r.stats;
  lines.push(
    `functions: ${functions} examined, ${changed} changed, ${added} new; ${bytes} bytes of code and data`,
  );
  for (const f of r.all) {
    if (!verbose && f.status !== "changed" && f.status !== "new" && f.status !== "inlined") continue;
    lines.push(`  ${f.status.padEnd(9)} ${f.name}${f.reason ? `: ${f.reason}` : ""}`);
  }
  if (r.hooks.length > 0) lines.push(`hooks: ${r.hooks.join(", ")}`);
  return lines.join("\n");
}

/** `xsplice diff`. */
export const diffCommand: Command = {
  name: "diff",
  usage:
    "diff --orig A.o --patched B.o [--orig ... --patched ...] --target ELF -o FILE [--ignore-line-changes] [--verbose] [--name N]",
  summary: "make a payload from two builds of an object (original, patched)",
  options: {
    orig: { type: "string", multiple: true },
    patched: { type: "string", multiple: true },
    target: { type: "string" },
    output: { type: "string", short: "o" },
    "ignore-line-changes": { type: "boolean" },
    verbose: { type: "boolean", short: "v" },
    name: { type: "string" },
  },
  positionals: [0, 0],
  describe(): string {
    return "diff";
  },
  async run(input: CommandInput): Promise<CommandResult> {
    const orig = optionValues(input, "orig");
    const patched = optionValues(input, "patched");
    if (orig.length === 0 || orig.length !== patched.length) {
      throw new XspliceError("EINVAL", "need as many --patched B.o as --orig A.o (at least one)");
    }
    const opts: Parameters<typeof diffObjects>[0] = {
      pairs: orig.map((o, i) => ({ orig: o, patched: patched[i]! })),
      target: oneOption(input, "target", "--target ELF"),
      out: oneOption(input, "output", "-o FILE"),
      ignoreLineChanges: input.values["ignore-line-changes"] === true,
    };
    const name = optionValues(input, "name")[0];
    if (name !== undefined) opts.name = name;
    const result = diffObjects(opts);
    return { json: diffJson(result), text: diffText(result, input.values["verbose"] === true) };
  },
};
