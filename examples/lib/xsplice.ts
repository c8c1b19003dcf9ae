/**
 * Runs the real `xsplice` command line (bin/xsplice.js) as a child process,
 * the way a user or a script would, and returns its exit status and output.
 * Asynchronous, so that a caller's timers, signal handlers and other
 * children keep running while xsplice works.
 */
import { spawn } from "node:child_process";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

/** The `xsplice` entry point of this checkout. */
export const XSPLICE_BIN: string = join(
  resolve(dirname(fileURLToPath(import.meta.url)), "../.."),
  "bin/xsplice.js",
);

/** The outcome of one `xsplice` run. */
export interface XspliceRun {
  /** The argument list, for messages. */
  args: string[];
  /** Exit status (SPEC §10: 0 success, 2 worth retrying, 1 otherwise); -1 if killed. */
  status: number;
  stdout: string;
  stderr: string;
  /** stdout parsed, when `--json` was given and it parsed. */
  json?: unknown;
  /** A one-line description of a failure: the JSON error document or stderr; "" on success. */
  error: string;
  /** Wall-clock time of the run in milliseconds (process start included). */
  elapsedMs: number;
}

/** Run `xsplice ARGS...`; never rejects for a non-zero exit, only reports it. */
export function runXsplice(args: string[], opts: { timeoutMs?: number } = {}): Promise<XspliceRun> {
  const started = performance.now();
  return new Promise((resolvePromise) => {
    const child = spawn(process.execPath, [XSPLICE_BIN, ...args], { stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (d: string) => {
      stdout += d;
    });
    child.stderr.setEncoding("utf8").on("data", (d: string) => {
      stderr += d;
    });
    const timer = setTimeout(() => child.kill("SIGKILL"), opts.timeoutMs ?? 60_000);
    child.on("close", (code) => {
      clearTimeout(timer);
      const run: XspliceRun = {
        args,
        status: code ?? -1,
        stdout,
        stderr,
        error: "",
        elapsedMs: performance.now() - started,
      };
      if (args.includes("--json")) {
        try {
          run.json = JSON.parse(stdout);
        } catch {
          // left undefined: the caller reports the raw output
        }
      }
      if (run.status !== 0) {
        const doc = run.json as { error?: string; message?: string } | undefined;
        run.error =
          doc?.error !== undefined
            ? `${doc.error}: ${doc.message ?? ""}`
            : (stderr.trim().split("\n").pop() ?? `exit ${run.status}`);
      }
      resolvePromise(run);
    });
  });
}

/** The sub-commands this checkout's `xsplice --help` lists. */
export async function availableCommands(): Promise<Set<string>> {
  const r = await runXsplice(["--help"]);
  const names = new Set<string>();
  let inList = false;
  for (const line of r.stdout.split("\n")) {
    if (line.startsWith("commands:")) inList = true;
    else if (inList) {
      const m = /^\s+([a-z][a-z-]*)\b/.exec(line);
      if (m) names.add(m[1]!);
    }
  }
  return names;
}

/** The names in `wanted` that `xsplice --help` does not list (empty when all are there). */
export async function missingCommands(wanted: readonly string[]): Promise<string[]> {
  const have = await availableCommands();
  return wanted.filter((c) => !have.has(c));
}
