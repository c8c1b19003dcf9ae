/** The table of `xsplice` sub-commands, in the order `--help` lists them (SPEC §10). */
import { buildCommand } from "./build.ts";
import type { Command } from "./command.ts";
import { inspectCommand } from "./inspect.ts";

export const commands: Command[] = [inspectCommand, buildCommand];
