/**
 * The agent's control socket: a Unix stream socket speaking JSON lines. Each
 * request is one line, a JSON object with `cmd`; each answer is one line:
 *
 * - `{"cmd":"status"}` → `{"ok":true,"status":AgentStatus}`
 * - `{"cmd":"rescan"}` → `{"ok":true}` once a scan has run
 * - anything else → `{"ok":false,"error":"EINVAL","message":"…"}`
 *
 * The socket is created mode 0600 (the agent runs as root; status shows
 * which processes run what). Also the `/metrics` HTTP endpoint.
 */
import { chmodSync, existsSync, unlinkSync } from "node:fs";
import { createServer as createHttpServer, type Server as HttpServer } from "node:http";
import { createServer, type Server } from "node:net";
import { XspliceError } from "../errors.ts";
import type { Agent } from "./agent.ts";

/** Largest request line accepted. */
const MAX_LINE = 4096;

/** Serve `agent` on Unix socket `path` (an old socket file there is replaced). */
export async function serveStatus(agent: Agent, path: string): Promise<Server> {
  if (existsSync(path)) unlinkSync(path);
  const server = createServer((conn) => {
    let buf = "";
    // Answers go out in the order of the requests: a client may send several
    // lines at once, and a `rescan` answers later than a `status` behind it.
    let queue = Promise.resolve();
    conn.setEncoding("utf8");
    conn.on("data", (d: string) => {
      buf += d;
      if (buf.length > MAX_LINE && !buf.includes("\n")) {
        conn.end(`${JSON.stringify({ ok: false, error: "EINVAL", message: "request line too long" })}\n`);
        return;
      }
      for (let nl = buf.indexOf("\n"); nl >= 0; nl = buf.indexOf("\n")) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        const pending = answer(agent, line);
        queue = queue.then(async () => {
          const a = await pending;
          if (!conn.destroyed) conn.write(`${JSON.stringify(a)}\n`);
        });
      }
    });
    conn.on("error", () => undefined);
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(path, () => resolve());
  });
  chmodSync(path, 0o600);
  return server;
}

async function answer(agent: Agent, line: string): Promise<unknown> {
  let req: unknown;
  try {
    req = JSON.parse(line);
  } catch {
    return { ok: false, error: "EINVAL", message: "request is not JSON" };
  }
  const cmd = (req as { cmd?: unknown } | null)?.cmd;
  if (cmd === "status") return { ok: true, status: agent.status() };
  if (cmd === "rescan") {
    await agent.kick();
    return { ok: true };
  }
  return { ok: false, error: "EINVAL", message: `unknown cmd ${JSON.stringify(cmd)} (status, rescan)` };
}

/** `HOST:PORT` of `--metrics`. */
export function parseListen(addr: string): { host: string; port: number } {
  const m = /^(.+):(\d{1,5})$/.exec(addr);
  const port = m ? Number(m[2]) : Number.NaN;
  if (!m || port > 65535) throw new XspliceError("EINVAL", `--metrics ${addr} is not HOST:PORT`);
  return { host: m[1]!.replace(/^\[(.*)\]$/, "$1"), port };
}

/** Serve `GET /metrics` (Prometheus text) on `addr`. */
export async function serveMetrics(agent: Agent, addr: string): Promise<HttpServer> {
  const { host, port } = parseListen(addr);
  const server = createHttpServer((req, res) => {
    if (req.method === "GET" && req.url === "/metrics") {
      res.writeHead(200, { "content-type": "text/plain; version=0.0.4" });
      res.end(agent.metrics.text());
    } else {
      res.writeHead(404);
      res.end();
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => resolve());
  });
  return server;
}
