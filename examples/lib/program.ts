/**
 * Start an example program, read its stdout line by line, wait for lines,
 * talk to it on stdin, and stop it. Used by the demo and the example tests.
 *
 * Programs are started as direct children: the tracer is always a separate
 * `xsplice` process, so this process's own waitpid calls (libuv reaps its
 * children) never see the ptrace stops that belong to that tracer.
 */
import { type ChildProcessWithoutNullStreams, spawn } from "node:child_process";

/** A running program. */
export interface Program {
  /** The program's pid. */
  pid: number;
  /** Base name, for messages. */
  name: string;
  /** Every stdout line so far. */
  lines: string[];
  /** Every stderr line so far. */
  errors: string[];
  /** Resolve with the first line from index `from` (default: the next line) matching `re`. */
  waitFor(re: RegExp, opts?: { timeoutMs?: number; from?: number }): Promise<string>;
  /** Write one line to the program's stdin. */
  send(line: string): void;
  /** True once the program has exited. */
  readonly exited: boolean;
  /** Exit code (or the signal's name) once exited. */
  readonly exitStatus: number | string | undefined;
  /** Send `signal` (default SIGTERM), wait up to `graceMs` for the exit, then SIGKILL. Safe to repeat. */
  stop(signal?: NodeJS.Signals, graceMs?: number): Promise<void>;
  /** The child process. */
  child: ChildProcessWithoutNullStreams;
}

/** Options of {@link startProgram}. */
export interface StartOptions {
  /** Extra environment variables. */
  env?: Record<string, string>;
  /** The line that says the program is ready; default `/^ready /`. */
  ready?: RegExp;
  /** How long to wait for it; default 10 s. */
  timeoutMs?: number;
}

/** Start `exe args...` and wait for its ready line; returns the running program and that line. */
export async function startProgram(
  exe: string,
  args: string[] = [],
  opts: StartOptions = {},
): Promise<{ program: Program; readyLine: string }> {
  const child = spawn(exe, args, { stdio: ["pipe", "pipe", "pipe"], env: { ...process.env, ...opts.env } });
  const name = exe.split("/").pop() ?? exe;
  const lines: string[] = [];
  const errors: string[] = [];
  const waiters = new Set<{ re: RegExp; from: number; resolve: (l: string) => void }>();
  let exited = false;
  let exitStatus: number | string | undefined;
  const exit = new Promise<void>((resolveExit) => {
    child.once("exit", (code, signal) => {
      exited = true;
      exitStatus = code ?? signal ?? undefined;
      resolveExit();
    });
  });
  child.on("error", (err) => errors.push(String(err)));
  child.stdin.on("error", () => {
    // the program exited; writes to it are moot
  });

  const splitter = (sink: string[], notify: boolean) => {
    let partial = "";
    return (chunk: string) => {
      partial += chunk;
      let nl = partial.indexOf("\n");
      while (nl >= 0) {
        sink.push(partial.slice(0, nl));
        partial = partial.slice(nl + 1);
        nl = partial.indexOf("\n");
      }
      if (!notify) return;
      for (const w of [...waiters]) {
        const hit = lines.slice(w.from).find((l) => w.re.test(l));
        if (hit !== undefined) {
          waiters.delete(w);
          w.resolve(hit);
        }
      }
    };
  };
  child.stdout.setEncoding("utf8").on("data", splitter(lines, true));
  child.stderr.setEncoding("utf8").on("data", splitter(errors, false));

  const waitFor = (re: RegExp, o: { timeoutMs?: number; from?: number } = {}): Promise<string> => {
    const from = o.from ?? lines.length;
    const hit = lines.slice(from).find((l) => re.test(l));
    if (hit !== undefined) return Promise.resolve(hit);
    return new Promise<string>((resolveLine, reject) => {
      const entry = {
        re,
        from,
        resolve: (l: string) => {
          clearTimeout(timer);
          resolveLine(l);
        },
      };
      const timer = setTimeout(() => {
        waiters.delete(entry);
        const tail = [...lines.slice(-10), ...errors.slice(-5)].join("\n");
        const state = exited ? ` (it exited: ${exitStatus})` : "";
        reject(new Error(`${name}: timed out waiting for ${re}${state}; last output:\n${tail}`));
      }, o.timeoutMs ?? 10_000);
      waiters.add(entry);
    });
  };

  const stop = async (signal: NodeJS.Signals = "SIGTERM", graceMs = 2000): Promise<void> => {
    if (exited) return;
    try {
      child.kill(signal);
    } catch {
      // already gone
    }
    const timer = new Promise<"timeout">((r) => setTimeout(() => r("timeout"), graceMs).unref());
    if ((await Promise.race([exit, timer])) === "timeout") {
      child.kill("SIGKILL");
      await exit;
    }
  };

  const program: Program = {
    pid: child.pid ?? 0,
    name,
    lines,
    errors,
    waitFor,
    send: (line: string) => {
      if (!exited) child.stdin.write(`${line}\n`);
    },
    get exited() {
      return exited;
    },
    get exitStatus() {
      return exitStatus;
    },
    stop,
    child,
  };
  try {
    const readyLine = await waitFor(opts.ready ?? /^ready /, {
      timeoutMs: opts.timeoutMs ?? 10_000,
      from: 0,
    });
    return { program, readyLine };
  } catch (err) {
    await stop("SIGKILL");
    throw err;
  }
}
