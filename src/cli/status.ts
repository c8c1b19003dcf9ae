/**
 * `xsplice status [--socket PATH] [--json]` (SPEC §14): what the agent knows,
 * payloads × processes, asked over its control socket (`{"cmd":"status"}`,
 * `src/agent/status-server.ts`).
 */
import { connect } from "node:net";
import type { AgentStatus } from "../agent/agent.ts";
import { XspliceError } from "../errors.ts";
import { DEFAULT_SOCKET } from "./agent.ts";
import type { Command } from "./command.ts";

/** Send one JSON-lines request to the agent at `path` and resolve with its one-line answer. */
export function askAgent(path: string, req: unknown, timeoutMs = 10_000): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const conn = connect(path);
    let buf = "";
    const timer = setTimeout(() => {
      conn.destroy();
      reject(new XspliceError("ETIMEDOUT", `no answer from the agent at ${path} in ${timeoutMs} ms`));
    }, timeoutMs);
    conn.setEncoding("utf8");
    conn.on("connect", () => conn.write(`${JSON.stringify(req)}\n`));
    conn.on("data", (d: string) => {
      buf += d;
      const nl = buf.indexOf("\n");
      if (nl < 0) return;
      clearTimeout(timer);
      conn.end();
      try {
        resolve(JSON.parse(buf.slice(0, nl)));
      } catch {
        reject(new XspliceError("EIO", `the agent at ${path} answered something that is not JSON`));
      }
    });
    conn.on("error", (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      reject(
        new XspliceError(
          err.code === "ENOENT" || err.code === "ECONNREFUSED" ? "ESRCH" : "EIO",
          `no agent listening at ${path} (${err.code ?? err.message})`,
        ),
      );
    });
  });
}

function table(s: AgentStatus): string {
  const lines = [
    `agent ${s.agent.pid}: ${s.agent.dir}, ${s.payloads.length} payload(s), exec gate ${s.agent.gate}`,
  ];
  for (const r of s.rejected) lines.push(`refused ${r.file}: ${r.error}: ${r.message}`);
  lines.push(`${"PID".padEnd(8)} ${"COMM".padEnd(16)} ${"PAYLOAD".padEnd(32)} STATUS`);
  for (const p of s.processes)
    for (const x of p.payloads)
      lines.push(
        `${String(p.pid).padEnd(8)} ${p.comm.padEnd(16)} ${x.name.padEnd(32)} ${x.status}${x.error ? ` (${x.error})` : ""}`,
      );
  return lines.join("\n");
}

/** `xsplice status`. */
export const statusCommand: Command = {
  name: "status",
  usage: "status [--socket PATH]",
  summary: "payloads x processes, as the running agent knows them",
  options: { socket: { type: "string" } },
  positionals: [0, 0],
  describe: () => "status",
  async run(input) {
    const path = typeof input.values["socket"] === "string" ? input.values["socket"] : DEFAULT_SOCKET;
    const a = (await askAgent(path, { cmd: "status" })) as {
      ok: boolean;
      status?: AgentStatus;
      message?: string;
    };
    if (!a.ok || !a.status) throw new XspliceError("EIO", `the agent refused: ${a.message ?? "?"}`);
    return { json: a.status, text: table(a.status) };
  },
};
