/**
 * The agent as its unit runs it (`xsplice agent` in the foreground, a child
 * of the test), with its socket, audit log and directory in a temporary
 * directory, and helpers to ask it and wait for a state.
 */
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { existsSync, readdirSync, readFileSync } from "node:fs";
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
  /** `HOST:PORT` of `/metrics` when started with `--metrics` (port 0 is resolved to the one bound). */
  metrics?: string;
  status(): Promise<AgentStatus>;
  /** Ask for a scan and wait for it. */
  rescan(): Promise<void>;
  /** SIGTERM, and wait for the exit; resolves with the exit code. */
  stop(): Promise<number | null>;
  /** SIGKILL, and wait for the exit. */
  kill(): Promise<void>;
}

/** How long the agent may take to serve, or to stop after SIGTERM, before the test fails. */
const AGENT_WAIT_MS = 60_000;

/** A spawned agent; `ready` resolves once it serves (rejects if it exits or takes too long). */
export interface SpawnedAgent extends RunningAgent {
  ready: Promise<void>;
  /**
   * Processes left of the agent's process group (its gate and workers outlive
   * a SIGKILLed agent until their current job ends); only with `ownGroup`.
   */
  groupLeft(): number[];
}

/** Pids whose process group is `pgid` (field 5 of /proc/PID/stat, after the parenthesised comm). */
export function processGroup(pgid: number): number[] {
  const out: number[] = [];
  for (const d of readdirSync("/proc")) {
    if (!/^\d+$/.test(d)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${d}/stat`, "utf8");
    } catch {
      continue;
    }
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    if (Number(f[2]) === pgid && f[0] !== "Z") out.push(Number(d));
  }
  return out;
}

/**
 * Spawn `xsplice agent --dir DIR` with state under `tmp`, gating only `/` (or `gateMount`),
 * without waiting for it to serve (a test that kills it at random moments
 * kills it during its start-up too).
 */
export function spawnAgent(
  dir: string,
  tmp: string,
  extra: string[] = [],
  opts: { ownGroup?: boolean; gateMount?: string } = {},
): SpawnedAgent {
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
      opts.gateMount ?? "/",
      "--rescan",
      "500",
      ...extra,
    ],
    { stdio: ["ignore", "ignore", "pipe"], detached: opts.ownGroup === true },
  );
  let err = "";
  let exitCode: number | null | undefined;
  const exited = new Promise<number | null>((r) =>
    child.once("exit", (code) => {
      exitCode = code;
      r(code);
    }),
  );
  const agent: SpawnedAgent = {
    child,
    socket,
    audit,
    stderr: () => err,
    groupLeft: () => (opts.ownGroup && child.pid ? processGroup(child.pid) : []),
    ready: new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        child.kill("SIGKILL");
        reject(new Error(`agent not serving after ${AGENT_WAIT_MS} ms: ${err}`));
      }, AGENT_WAIT_MS);
      child.stderr!.setEncoding("utf8").on("data", (d: string) => {
        err += d;
        const m = /xsplice agent: watching .*?(?:, metrics (\S+))?\n/.exec(err);
        if (!m) return;
        clearTimeout(timer);
        agent.metrics = m[1];
        resolve();
      });
      child.once("exit", (code, signal) => {
        clearTimeout(timer);
        reject(new Error(`agent exited ${signal ?? code}: ${err}`));
      });
    }),
    status: async () => (await ask({ cmd: "status" })).status!,
    rescan: async () => {
      await ask({ cmd: "rescan" });
    },
    stop: async () => {
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), AGENT_WAIT_MS);
      const code = await exited;
      clearTimeout(timer);
      return code;
    },
    kill: async () => {
      if (exitCode !== undefined) return;
      child.kill("SIGKILL");
      await exited;
    },
  };
  // A kill before it serves is expected of some callers; they look at `ready` if they care.
  agent.ready.catch(() => undefined);
  const ask = async (req: unknown) =>
    (await askAgent(socket, req, AGENT_WAIT_MS)) as { ok: boolean; status?: AgentStatus };
  return agent;
}

/** Start `xsplice agent --dir DIR` with state under `tmp`, gating only `/`; resolves once it serves. */
export async function startAgent(dir: string, tmp: string, extra: string[] = []): Promise<RunningAgent> {
  const agent = spawnAgent(dir, tmp, extra);
  await agent.ready;
  return agent;
}

/** One audit log line (docs/agent.md). */
export interface AuditLine {
  time: string;
  who: { agent: number; uid?: number };
  what: { action: string; payload?: string; pid?: number; comm?: string; file?: string };
  result: string;
  message?: string;
}

/** The audit log's lines, parsed. */
export function auditLines(file: string): AuditLine[] {
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
