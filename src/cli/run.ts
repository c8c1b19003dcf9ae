/**
 * `xsplice run [--payloads DIR] [POLICY] -- CMD ARGS…` (SPEC §14): start a
 * program with every payload of DIR that matches one of its objects already
 * applied when its first instruction of its own runs — for service managers
 * and containers, without an agent. The program is held at its ELF entry
 * point (`src/agent/start-held.ts`): the dynamic linker has mapped its
 * libraries, `main` has not begun. Fail-closed: a payload that matches but
 * cannot be applied kills the program before it starts, and `run` fails.
 * Exit status: the program's (128+N when killed by signal N).
 */

import { createBuildIdCache } from "../agent/build-id.ts";
import { findMappedBuildId } from "../agent/discover.ts";
import { readPayloadDir } from "../agent/payload-dir.ts";
import { startHeld } from "../agent/start-held.ts";
import { load } from "../core/api.ts";
import { XspliceError } from "../errors.ts";
import { readMaps } from "../process/maps.ts";
import { retryForOf, timeoutOf } from "./apply.ts";
import type { Command } from "./command.ts";
import { POLICY_OPTIONS, POLICY_USAGE, uploadPolicy } from "./policy.ts";

/** Where `run` and the agent look for payloads unless told otherwise. */
export const DEFAULT_PAYLOAD_DIR = "/var/lib/xsplice/payloads";

const FORWARDED = ["SIGTERM", "SIGINT", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2"] as const;

/** `xsplice run`. */
export const runCommand: Command = {
  name: "run",
  usage: `run [--payloads DIR] [--timeout MS] ${POLICY_USAGE} -- CMD [ARGS...]`,
  summary: "start a program with the matching payloads of DIR applied before its main",
  options: {
    payloads: { type: "string" },
    timeout: { type: "string" },
    "retry-for": { type: "string" },
    ...POLICY_OPTIONS,
  },
  positionals: [1, Number.MAX_SAFE_INTEGER],
  describe: (p) => `run ${p[0] ?? ""}`.trimEnd(),
  async run(input) {
    const [cmd, ...args] = input.positionals as [string, ...string[]];
    const dir = typeof input.values["payloads"] === "string" ? input.values["payloads"] : DEFAULT_PAYLOAD_DIR;
    const policy = uploadPolicy(input);
    const timeoutMs = timeoutOf(input);
    const retryForMs = retryForOf(input);
    // Every payload is read and checked (SPEC §9) before the program starts: a refused one is an error.
    const { payloads, rejected } = readPayloadDir(dir, policy);
    if (rejected.length > 0) throw rejected[0]!.error;

    const held = await startHeld(cmd, args);
    const applied: { name: string; pauseMs: number }[] = [];
    try {
      const maps = readMaps(held.pid);
      const cache = createBuildIdCache();
      for (const p of payloads) {
        if (findMappedBuildId(held.pid, maps, p.target, cache) === undefined) continue;
        const r = load(held.pid, p.name, p.bytes, { ...policy, timeoutMs, retryForMs });
        applied.push({ name: p.name, pauseMs: r.pause?.totalMs ?? 0 });
        if (!input.json) process.stderr.write(`xsplice: run: applied ${p.name} in ${held.pid} before main\n`);
      }
      held.release();
    } catch (err) {
      held.kill();
      if (err instanceof XspliceError)
        throw new XspliceError(err.errno, `${cmd} (pid ${held.pid}) not started: ${err.message}`, err.where);
      throw err;
    }

    const forward = (sig: NodeJS.Signals) => () => {
      try {
        process.kill(held.pid, sig);
      } catch {
        // gone already
      }
    };
    const handlers = FORWARDED.map((sig) => [sig, forward(sig)] as const);
    for (const [sig, h] of handlers) process.on(sig, h);
    const status = await new Promise<number>((resolve) => {
      if (held.shell.exitCode !== null) resolve(held.shell.exitCode);
      else held.shell.once("exit", (code, signal) => resolve(code ?? 128 + (signal ? 15 : 0)));
    });
    for (const [sig, h] of handlers) process.off(sig, h);
    return {
      json: { pid: held.pid, command: cmd, applied, heldMs: held.heldMs, status },
      text: "",
      status,
    };
  },
};
