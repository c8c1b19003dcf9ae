/**
 * The agent as its unit runs it (`xsplice agent` in the foreground, a child
 * of the test), with its socket, audit log and directory in a temporary
 * directory, and helpers to ask it and wait for a state.
 */
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { XSPLICE_BIN } from "../../examples/lib/xsplice.ts";
import type { AgentStatus } from "../../src/agent/agent.ts";
import { askAgent } from "../../src/cli/status.ts";

/** A running agent. */
export interface RunningAgent {
  child: ChildProcess;
  socket: string;
  audit: string;
  stderr: () => string;
  status(): Promise<AgentStatus>;
  /** Ask for a scan and wait for it. */
  rescan(): Promise<void>;
  /** SIGTERM, and wait for the exit; resolves with the exit code. */
  stop(): Promise<number | null>;
  /** SIGKILL, and wait for the exit. */
  kill(): Promise<void>;
}

/** Start `xsplice agent --dir DIR` with state under `tmp`, gating only `/`; resolves once it serves. */
export async function startAgent(dir: string, tmp: string, extra: string[] = []): Promise<RunningAgent> {
  const socket = join(tmp, "agent.sock");
  const audit = join(tmp, "audit.log");
  const child = spawn(
    process.execPath,
    [
      XSPLICE_BIN,
      "agent",
      "--dir",
      dir,
      "--socket",
      socket,
      "--audit",
      audit,
      "--gate-mount",
      "/",
      "--rescan",
      "500",
      ...extra,
    ],
    { stdio: ["ignore", "ignore", "pipe"] },
  );
  let err = "";
  const exited = new Promise<number | null>((r) => child.once("exit", (code) => r(code)));
  await new Promise<void>((resolve, reject) => {
    child.stderr!.setEncoding("utf8").on("data", (d: string) => {
      err += d;
      if (err.includes("xsplice agent: watching")) resolve();
    });
    child.once("exit", (code) => reject(new Error(`agent exited ${code}: ${err}`)));
  });
  const ask = async (req: unknown) =>
    (await askAgent(socket, req, 60_000)) as { ok: boolean; status?: AgentStatus };
  return {
    child,
    socket,
    audit,
    stderr: () => err,
    status: async () => (await ask({ cmd: "status" })).status!,
    rescan: async () => {
      await ask({ cmd: "rescan" });
    },
    stop: async () => {
      child.kill("SIGTERM");
      return exited;
    },
    kill: async () => {
      child.kill("SIGKILL");
      await exited;
    },
  };
}

/** The audit log's lines, parsed. */
export function auditLines(
  file: string,
): { what: { action: string; payload?: string; pid?: number }; result: string }[] {
  if (!existsSync(file)) return [];
  return readFileSync(file, "utf8")
    .split("\n")
    .filter((l) => l !== "")
    .map((l) => JSON.parse(l));
}

/** Wait until `check` holds (re-asking the agent to scan in between), or fail after `timeoutMs`. */
export async function until(
  what: string,
  check: () => Promise<boolean> | boolean,
  agent?: RunningAgent,
  timeoutMs = 60_000,
): Promise<void> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    if (agent) await agent.rescan();
    else await new Promise((r) => setTimeout(r, 20));
  }
}

/** Run `exe once` and resolve with its output (it exits by itself). */
export function runOnce(exe: string): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(exe, ["once"], { timeout: 30_000 }, (err, stdout) => (err ? reject(err) : resolve(stdout)));
  });
}
