/**
 * `xsplice make --src DIR --patch FIX.diff [--patch ...] --target ELF -o OUT
 * [-j N] [--ignore-line-changes] [--verbose] [--name N] [-- BUILD COMMAND...]`
 * (SPEC §13): a payload from a source tree and a patch. Progress goes to
 * stderr, except with `--json`; the JSON document is `diff`'s plus
 * `objects: {built, differing, diffed}`.
 */
import { makePayload } from "../build/make/index.ts";
import { XspliceError } from "../errors.ts";
import { type Command, type CommandInput, type CommandResult, oneOption, optionValues } from "./command.ts";
import { diffJson, diffText } from "./diff.ts";

/** `xsplice make`. */
export const makeCommand: Command = {
  name: "make",
  usage:
    "make --src DIR --patch FIX.diff [--patch ...] --target ELF -o FILE [-j N] [--ignore-line-changes] [--verbose] [--name N] [-- BUILD COMMAND...]",
  summary: "make a payload from a source tree and a patch (builds the tree twice)",
  options: {
    src: { type: "string" },
    patch: { type: "string", multiple: true },
    target: { type: "string" },
    output: { type: "string", short: "o" },
    jobs: { type: "string", short: "j" },
    "ignore-line-changes": { type: "boolean" },
    verbose: { type: "boolean", short: "v" },
    name: { type: "string" },
  },
  positionals: [0, Number.MAX_SAFE_INTEGER],
  describe(): string {
    return "make";
  },
  async run(input: CommandInput): Promise<CommandResult> {
    const jobsText = optionValues(input, "jobs")[0] ?? "1";
    const jobs = Number(jobsText);
    if (!Number.isInteger(jobs) || jobs < 1 || jobs > 1024) {
      throw new XspliceError("EINVAL", `-j ${jobsText}: not a number of jobs (1..1024)`);
    }
    const opts: Parameters<typeof makePayload>[0] = {
      src: oneOption(input, "src", "--src DIR"),
      patches: optionValues(input, "patch"),
      target: oneOption(input, "target", "--target ELF"),
      out: oneOption(input, "output", "-o FILE"),
      jobs,
      ignoreLineChanges: input.values["ignore-line-changes"] === true,
    };
    if (input.positionals.length > 0) opts.command = input.positionals;
    const name = optionValues(input, "name")[0];
    if (name !== undefined) opts.name = name;
    if (!input.json) opts.progress = (line) => process.stderr.write(`xsplice make: ${line}\n`);
    const r = await makePayload(opts);
    return {
      json: { ...diffJson(r), objects: r.objects },
      text: `${diffText(r, input.values["verbose"] === true)}\nobjects: ${r.objects.built} built, ${r.objects.differing} changed, ${r.objects.diffed} diffed`,
    };
  },
};
