/**
 * `xsplice list [PID]` (SPEC §5, §10): the payloads of one process, or of every
 * process that has any, read without stopping anything.
 */
import { checkPid, type ListEntry, list, listAll, type ProcessPayloads, rcName } from "../core/api.ts";
import { ERRNO } from "../errors.ts";
import type { Command } from "./command.ts";
import { printable } from "./printable.ts";

/** SPEC §10 error lines name the operation, the payload and the process: `list fix-1 in 4242`. */
function describeOp(op: string, pid: string | undefined, name: string | undefined): string {
  return [op, name, pid === undefined ? undefined : `in ${pid}`].filter((x) => x !== undefined).join(" ");
}

function table(entries: ListEntry[], bad: ProcessPayloads[] = []): string {
  if (entries.length === 0 && bad.length === 0) return "no payloads";
  const rows = entries.map((e) => {
    const meta = Object.entries(e.metadata)
      .map(([k, v]) => printable(`${k}=${v.replace(/\n/g, ",")}`))
      .join(" ");
    return `${String(e.pid).padEnd(8)} ${printable(e.name).padEnd(24)} ${e.state.padEnd(8)} ${rcName(e.rc).padEnd(8)} ${meta}`;
  });
  for (const p of bad)
    rows.push(
      `${String(p.pid).padEnd(8)} ${"-".padEnd(24)} ${"-".padEnd(8)} ${p.error!.errno.padEnd(8)} ${printable(`registry unreadable: ${p.error!.message}`)}`,
    );
  return [
    `${"PID".padEnd(8)} ${"NAME".padEnd(24)} ${"STATE".padEnd(8)} ${"RC".padEnd(8)} METADATA`,
    ...rows,
  ].join("\n");
}

/** `xsplice list`. */
export const listCommand: Command = {
  name: "list",
  usage: "list [PID]",
  summary: "payloads of a process (without PID: of every process that has any)",
  options: {},
  positionals: [0, 1],
  describe: (p) => describeOp("list", p[0], undefined),
  async run(input) {
    const pidText = input.positionals[0];
    if (pidText !== undefined) {
      const r = await list(checkPid(pidText));
      return { json: { version: r.version, payloads: r.payloads }, text: table(r.payloads) };
    }
    const all = await listAll();
    // One stamp for the whole listing: the sum of the per-process stamps moves whenever any of them does.
    const version = all.reduce((n, p) => n + p.version, 0);
    const payloads = all.flatMap((p) => p.payloads);
    const bad = all.filter((p) => p.error !== undefined);
    const errors = bad.map((p) => ({
      pid: p.pid,
      error: p.error!.errno,
      errno: ERRNO[p.error!.errno],
      message: p.error!.message,
    }));
    return { json: { version, payloads, errors }, text: table(payloads, bad) };
  },
};
