/** The table of `xsplice` sub-commands, in the order `--help` lists them (SPEC §10). */
import { agentCommand } from "./agent.ts";
import { applyCommand } from "./apply.ts";
import { buildCommand } from "./build.ts";
import type { Command } from "./command.ts";
import { diffCommand } from "./diff.ts";
import { getCommand } from "./get.ts";
import { inspectCommand } from "./inspect.ts";
import { listCommand } from "./list.ts";
import { loadCommand } from "./load.ts";
import { makeCommand } from "./make.ts";
import { replaceCommand } from "./replace.ts";
import { revertCommand } from "./revert.ts";
import { runCommand } from "./run.ts";
import { signCommand } from "./sign.ts";
import { statusCommand } from "./status.ts";
import { unloadCommand } from "./unload.ts";
import { uploadCommand } from "./upload.ts";

export const commands: Command[] = [
  uploadCommand,
  applyCommand,
  revertCommand,
  replaceCommand,
  unloadCommand,
  loadCommand,
  getCommand,
  listCommand,
  inspectCommand,
  buildCommand,
  signCommand,
  diffCommand,
  makeCommand,
  runCommand,
  agentCommand,
  statusCommand,
];
