/**
 * `xsplice build FILE.c... --target ELF -o OUT [--depends PAYLOAD] [--cc CC]
 * [--cflags="..."] [--name N]` (SPEC §10, §11): a payload written by hand in C.
 * `--cflags` takes its value after `=` because the flags start with a dash.
 * The JSON document: `{path, buildId, target, depends, funcs: [{name, oldAddr,
 * oldSize, newSize, nop, replacement?}], symbols: [{name, addr}], external}`.
 */
import { type BuildResult, buildPayload } from "../build/index.ts";
import { XspliceError } from "../errors.ts";
import type { Command, CommandInput, CommandResult } from "./command.ts";

function addr(v: bigint): string {
  return `0x${v.toString(16)}`;
}

function option(input: CommandInput, name: string): string | undefined {
  const v = input.values[name];
  return typeof v === "string" ? v : undefined;
}

function required(input: CommandInput, name: string, usage: string): string {
  const v = option(input, name);
  if (v === undefined || v === "") throw new XspliceError("EINVAL", `missing ${usage}`);
  return v;
}

/** The JSON document of a build (addresses as hex strings, as `inspect` prints them). */
export function buildJson(r: BuildResult): Record<string, unknown> {
  return {
    path: r.path,
    buildId: r.buildId,
    target: r.target,
    depends: r.depends,
    funcs: r.funcs.map((f) => ({
      name: f.name,
      oldAddr: addr(f.oldAddr),
      oldSize: f.oldSize,
      newSize: f.newSize,
      nop: f.nop,
      ...(f.replacement === undefined ? {} : { replacement: f.replacement }),
    })),
    symbols: r.symbols.map((s) => ({ name: s.name, addr: addr(s.addr) })),
    external: r.external,
  };
}

/** The text a person reads. */
export function buildText(r: BuildResult): string {
  const lines = [`built ${r.path}`, `build-id:  ${r.buildId}`, `target:    ${r.target}`];
  lines.push(`depends:   ${r.depends}`, `functions: ${r.funcs.length}`);
  for (const f of r.funcs) {
    const action = f.nop ? `NOP ${f.newSize} bytes` : `-> ${f.replacement} (${f.newSize} bytes)`;
    lines.push(`  ${f.name} @ ${addr(f.oldAddr)} (${f.oldSize} bytes): ${action}`);
  }
  lines.push(`target symbols: ${r.symbols.length}`);
  for (const s of r.symbols) lines.push(`  ${addr(s.addr)} ${s.name}`);
  if (r.external.length > 0) lines.push(`resolved at load: ${r.external.join(", ")}`);
  return lines.join("\n");
}

/** `xsplice build`. */
export const buildCommand: Command = {
  name: "build",
  usage: "build FILE.c... --target ELF -o FILE [--depends PAYLOAD] [--cc CC] [--cflags=FLAGS] [--name N]",
  summary: "compile a hand-written payload (xsplice.h) against a target",
  options: {
    target: { type: "string" },
    output: { type: "string", short: "o" },
    depends: { type: "string" },
    cc: { type: "string" },
    cflags: { type: "string" },
    name: { type: "string" },
  },
  positionals: [1, Number.MAX_SAFE_INTEGER],
  describe(positionals: string[]): string {
    return `build ${positionals.join(" ")}`;
  },
  async run(input: CommandInput): Promise<CommandResult> {
    const target = required(input, "target", "--target ELF");
    const out = required(input, "output", "-o FILE");
    const cflags = (option(input, "cflags") ?? "").split(/\s+/).filter((f) => f !== "");
    const opts: Parameters<typeof buildPayload>[0] = { sources: input.positionals, target, out, cflags };
    const depends = option(input, "depends");
    const cc = option(input, "cc");
    const name = option(input, "name");
    if (depends !== undefined) opts.depends = depends;
    if (cc !== undefined) opts.cc = cc;
    if (name !== undefined) opts.name = name;
    const result = buildPayload(opts);
    return { json: buildJson(result), text: buildText(result) };
  },
};
