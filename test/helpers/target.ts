/**
 * Start a fixture program as a live target for process tests, wait until it
 * says it is ready, talk to it over stdin/stdout, and kill it afterwards.
 *
 * The target is started as a grandchild (through `sh`), not as a child of this
 * Node process: libuv reaps its children with `waitpid(pid, WNOHANG)` on
 * SIGCHLD, and for a traced child that call also consumes ptrace-stop reports
 * of the main thread, which the tracer then never sees. A grandchild's reports
 * go only to its tracer. Its pid comes from the `pid=N` in its ready line.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { readFileSync, realpathSync } from "node:fs";
import { WAIT_MS, waitUntil } from "./wait.ts";

/** A running fixture. */
export interface Target {
  /** The fixture's pid (from its ready line). */
  pid: number;
  /** The ready line itself, e.g. `ready pid=123 port=4567`. */
  readyLine: string;
  /** Every stdout line so far. */
  lines: string[];
  /** Resolve with the first line (from line index `from`, default: the next one) matching `re`. */
  waitFor(re: RegExp, opts?: { timeoutMs?: number; from?: number }): Promise<string>;
  /** Write one line to the fixture's stdin. */
  send(line: string): void;
  /** Kill the fixture (SIGKILL) and wait for its shell to go. Safe to call twice. */
  kill(): Promise<void>;
  /** The `sh` wrapper process. */
  shell: ChildProcess;
}

/** Options for `startTarget`. */
export interface StartOptions {
  /** How the ready line looks; must capture nothing, must contain `pid=N`. Default `/^ready /`. */
  ready?: RegExp;
  /** Deadline of the ready line; default `WAIT_MS` (a busy machine can be slow to start a program). */
  timeoutMs?: number;
}

/** Start `exe args...` and wait for its ready line (which must contain `pid=N`). */
export async function startTarget(
  exe: string,
  args: string[] = [],
  opts: StartOptions = {},
): Promise<Target> {
  // `"$0" "$@" <&3 & wait` (stdin passed through fd 3: sh gives background jobs /dev/null) keeps the fixture out of Node's child list while its stdio stays ours.
  const shell = spawn("/bin/sh", ["-c", 'exec 3<&0; "$0" "$@" <&3 3<&- & wait', exe, ...args], {
    stdio: ["pipe", "pipe", "inherit"],
  });
  const lines: string[] = [];
  const waiters: { re: RegExp; from: number; resolve: (l: string) => void }[] = [];
  let partial = "";
  shell.stdout!.setEncoding("utf8");
  shell.stdout!.on("data", (chunk: string) => {
    partial += chunk;
    let nl = partial.indexOf("\n");
    while (nl >= 0) {
      lines.push(partial.slice(0, nl));
      partial = partial.slice(nl + 1);
      nl = partial.indexOf("\n");
    }
    for (const w of [...waiters]) {
      const hit = lines.slice(w.from).find((l) => w.re.test(l));
      if (hit !== undefined) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(hit);
      }
    }
  });
  const exited = new Promise<void>((resolve) => shell.once("exit", () => resolve()));

  const waitFor = (re: RegExp, o: { timeoutMs?: number; from?: number } = {}): Promise<string> => {
    const from = o.from ?? lines.length;
    const hit = lines.slice(from).find((l) => re.test(l));
    if (hit !== undefined) return Promise.resolve(hit);
    return new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => {
        waiters.splice(waiters.indexOf(entry), 1);
        reject(new Error(`timed out waiting for ${re} from ${exe}; output:\n${lines.slice(-20).join("\n")}`));
      }, o.timeoutMs ?? WAIT_MS);
      const entry = {
        re,
        from,
        resolve: (l: string) => {
          clearTimeout(timer);
          resolve(l);
        },
      };
      waiters.push(entry);
    });
  };

  let pid = 0;
  let killed = false;
  const kill = async (): Promise<void> => {
    if (killed) return;
    killed = true;
    // The fixture itself too when it never printed its pid: the shell's children, as the kernel lists them.
    const victims = new Set(pid > 0 ? [pid] : []);
    try {
      const children = readFileSync(`/proc/${shell.pid}/task/${shell.pid}/children`, "utf8");
      for (const c of children.trim().split(/\s+/)) if (c !== "") victims.add(Number(c));
    } catch {
      // the shell is gone, and with it the only way to name a fixture that never said its pid
    }
    for (const v of victims) {
      try {
        process.kill(v, "SIGKILL");
      } catch {
        // already gone
      }
    }
    shell.kill("SIGKILL");
    await Promise.race([exited, new Promise((r) => setTimeout(r, 2000))]);
  };

  let readyLine: string;
  try {
    readyLine = await waitFor(opts.ready ?? /^ready /, { timeoutMs: opts.timeoutMs ?? WAIT_MS, from: 0 });
  } catch (err) {
    await kill();
    throw err;
  }
  pid = Number(/pid=(\d+)/.exec(readyLine)?.[1] ?? 0);
  if (!pid) {
    await kill();
    throw new Error(`ready line of ${exe} has no pid=N: ${readyLine}`);
  }
  return {
    pid,
    readyLine,
    lines,
    waitFor,
    send: (line: string) => {
      shell.stdin!.write(`${line}\n`);
    },
    kill,
    shell,
  };
}

/**
 * Run-time address of symbol `name` of executable or library `exe` in process `pid`: the
 * symbol's value from `nm` plus the load base (the mapping of `exe` at file
 * offset 0 in `/proc/PID/maps`; 0 for a non-PIE executable).
 */
export function symbolAddress(pid: number, exe: string, name: string): bigint {
  // Shared libraries are often stripped of .symtab: fall back to the dynamic symbols.
  const find = (args: string[]) =>
    execFileSync("nm", args, { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] })
      .split("\n")
      .find((l) => l.replace(/@.*$/, "").endsWith(` ${name}`) && !/ [Uwv] /.test(l));
  let line: string | undefined;
  try {
    line = find([exe]);
  } catch {
    line = undefined;
  }
  line ??= find(["-D", exe]);
  if (!line) throw new Error(`${name} not found by nm in ${exe}`);
  const value = BigInt(`0x${line.split(" ")[0]}`);
  const real = realpathSync(exe);
  const maps = readFileSync(`/proc/${pid}/maps`, "utf8").split("\n");
  const first = maps.find((l) => l.endsWith(` ${real}`) && l.split(/\s+/)[2] === "00000000");
  if (!first) throw new Error(`${real} is not mapped in process ${pid}`);
  const elfType = execFileSync("readelf", ["-h", exe], { encoding: "utf8" });
  const base = /Type:\s+DYN/.test(elfType) ? BigInt(`0x${first.split("-")[0]}`) : 0n;
  return base + value;
}

/**
 * Wait until the main thread of `pid` sits blocked in `read(2)` — a fixture
 * waiting for its next command. Printing "ready" comes before the first
 * `fgets`, which allocates stdio's buffer on the heap: tests that fingerprint
 * the process's memory must wait for that, or they see the fixture's own change.
 */
export async function waitBlockedInRead(pid: number, timeoutMs = WAIT_MS): Promise<void> {
  await waitUntil(
    `process ${pid} to block in read`,
    () => {
      try {
        return readFileSync(`/proc/${pid}/syscall`, "utf8").split(" ")[0] === "0";
      } catch {
        return false; // a process that is gone fails the caller's next step with a clearer message
      }
    },
    { timeoutMs },
  );
}
