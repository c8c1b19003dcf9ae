/**
 * `xsplice agent --dir DIR [--socket PATH] [--metrics HOST:PORT] [-j N]
 * [--audit FILE] [--no-gate] [POLICY]` (SPEC §14): run the agent in the
 * foreground (as a service manager runs it) until SIGTERM or SIGINT.
 * Audit lines (JSON) go to stdout unless `--audit FILE`; diagnostics to stderr.
 */
import { appendFileSync } from "node:fs";
import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import { Agent } from "../agent/agent.ts";
import { lockHost } from "../agent/host-lock.ts";
import { serveMetrics, serveStatus } from "../agent/status-server.ts";
import { concurrencyOf } from "./all.ts";
import { retryForOf, timeoutOf } from "./apply.ts";
import type { Command } from "./command.ts";
import { POLICY_OPTIONS, POLICY_USAGE, uploadPolicy } from "./policy.ts";
import { DEFAULT_PAYLOAD_DIR } from "./run.ts";

/** Where the agent's control socket is unless `--socket` says otherwise. */
export const DEFAULT_SOCKET = "/run/xsplice/agent.sock";

/** `xsplice agent`. */
export const agentCommand: Command = {
  name: "agent",
  usage: `agent [--dir DIR] [--socket PATH] [--metrics HOST:PORT] [-j N] [--audit FILE] [--rescan MS] [--no-gate] [--gate-mount PATH]... ${POLICY_USAGE}`,
  summary: "keep every process of the host patched with the payloads of DIR, new ones before main",
  options: {
    dir: { type: "string" },
    socket: { type: "string" },
    metrics: { type: "string" },
    jobs: { type: "string", short: "j" },
    audit: { type: "string" },
    rescan: { type: "string" },
    "no-gate": { type: "boolean" },
    "gate-mount": { type: "string", multiple: true },
    timeout: { type: "string" },
    "retry-for": { type: "string" },
    ...POLICY_OPTIONS,
  },
  positionals: [0, 0],
  describe: () => "agent",
  async run(input) {
    const v = input.values;
    const dir = typeof v["dir"] === "string" ? v["dir"] : DEFAULT_PAYLOAD_DIR;
    const socket = typeof v["socket"] === "string" ? v["socket"] : DEFAULT_SOCKET;
    const policy = uploadPolicy(input);
    const auditFile = typeof v["audit"] === "string" ? v["audit"] : undefined;
    const rescanMs =
      typeof v["rescan"] === "string" && /^\d+$/.test(v["rescan"]) ? Number(v["rescan"]) : undefined;
    // From the very start: a SIGTERM that came before the handler (a service manager stopping
    // the agent as soon as it said it was watching) killed it outright, half the time (measured
    // 5 of 12 with SIGTERM sent on the "watching" line), without the gate's orderly release.
    const stopRequested = new Promise<void>((resolve) => {
      process.once("SIGTERM", () => resolve());
      process.once("SIGINT", () => resolve());
    });
    // Before anything is touched: a second agent would revert what the first one applies.
    const hostLock = lockHost();
    const agent = new Agent({
      dir,
      policy: {
        requireSignature: policy.requireSignature,
        trustedKeys: policy.trustedKeys,
        maxSize: policy.maxSize,
      },
      timing: { timeoutMs: timeoutOf(input), retryForMs: retryForOf(input) },
      concurrency: concurrencyOf(input),
      rescanMs,
      gate: v["no-gate"] !== true,
      gateMounts: Array.isArray(v["gate-mount"]) ? v["gate-mount"].map(String) : undefined,
      audit: auditFile ? (l) => appendFileSync(auditFile, `${l}\n`) : undefined,
    });
    await agent.start();
    const status = await serveStatus(agent, socket);
    const metrics = typeof v["metrics"] === "string" ? await serveMetrics(agent, v["metrics"]) : undefined;
    process.stderr.write(
      `xsplice agent: watching ${dir}, socket ${socket}${metrics ? `, metrics ${listening(metrics)}` : ""}\n`,
    );
    await stopRequested;
    process.stderr.write("xsplice agent: stopping\n");
    status.close();
    metrics?.close();
    await agent.stop();
    hostLock.release();
    return { json: { stopped: true }, text: "" };
  },
};

/** `HOST:PORT` a server listens on (the port chosen when `--metrics HOST:0` asked for any). */
function listening(server: Server): string {
  const a = server.address() as AddressInfo;
  return a.family === "IPv6" ? `[${a.address}]:${a.port}` : `${a.address}:${a.port}`;
}
