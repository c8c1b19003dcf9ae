/**
 * Shared by the example tests: the example programs built and started once per
 * test file, the real `xsplice` command line with assertions, one-shot TCP
 * requests, and the check that the commands an end-to-end test needs exist
 * (so that a checkout without them fails loudly instead of passing vacuously).
 */
import assert from "node:assert/strict";
import { mkdtempSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before } from "node:test";
import { buildProgram, PROGRAMS } from "../../examples/lib/build.ts";
import { type Program, type StartOptions, startProgram } from "../../examples/lib/program.ts";
import { missingCommands, runXsplice, type XspliceRun } from "../../examples/lib/xsplice.ts";
import { WAIT_MS } from "../helpers/wait.ts";

export { buildExamplePayload } from "../../examples/lib/build.ts";

/** Build (or reuse) the example program `name`. */
export function program(name: keyof typeof PROGRAMS): Promise<string> {
  return buildProgram(PROGRAMS[name]);
}

/** An example program a test file runs across its tests; the fields are set by its `before` hook. */
export interface FileProgram {
  /** The built executable. */
  exe: string;
  /** The running program. */
  program: Program;
  /** The line with which it said it was ready. */
  readyLine: string;
}

/**
 * Build example program `name` and start it (`args`, `opts`) before this test
 * file's tests, SIGKILL it after them. Call at the top level of a test file.
 * Read the fields only inside tests: Node 20 starts a file's root-level
 * `before` hooks together, so another `before` may run before they are set.
 */
export function programForFile(
  name: keyof typeof PROGRAMS,
  args: string[] = [],
  opts: StartOptions = {},
): FileProgram {
  const running = {} as FileProgram;
  before(async () => {
    running.exe = await program(name);
    const started = await startProgram(running.exe, args, opts);
    running.program = started.program;
    running.readyLine = started.readyLine;
  });
  after(async () => {
    await running.program?.stop("SIGKILL");
  });
  return running;
}

/** Send `line` to `p`'s stdin and resolve with the first later stdout line matching `answer`. */
export function ask(p: Program, line: string, answer: RegExp): Promise<string> {
  const from = p.lines.length;
  p.send(line);
  return p.waitFor(answer, { from });
}

/** A fresh directory for a test file's payloads. */
export function outDir(): string {
  return mkdtempSync(join(tmpdir(), "xsplice-examples-test-"));
}

/** The commands a live-patching example needs (SPEC §10). */
export const LIVE_COMMANDS = ["load", "revert", "unload", "get", "list"] as const;

let missingLive: Promise<string[]> | undefined;

/**
 * Fail (not skip) when this checkout's `xsplice` lacks a command the
 * end-to-end test needs, naming what is missing.
 */
export async function requireCommands(wanted: readonly string[] = LIVE_COMMANDS): Promise<void> {
  missingLive ??= missingCommands(LIVE_COMMANDS);
  const missing = (await missingLive).filter((c) => wanted.includes(c));
  assert.deepEqual(
    missing,
    [],
    `xsplice has no ${missing.join("/")} command in this checkout: the end-to-end example cannot run (issues #4, #5)`,
  );
}

/** Run `xsplice ARGS... --json`, assert exit status `status` (default 0), return the parsed document. */
export async function xs(args: string[], status = 0): Promise<Record<string, unknown>> {
  const r: XspliceRun = await runXsplice([...args, "--json"]);
  assert.equal(
    r.status,
    status,
    `xsplice ${args.join(" ")}: exit ${r.status}, expected ${status}; ${r.error || r.stdout.trim()}`,
  );
  assert.ok(r.json !== undefined, `xsplice ${args.join(" ")} --json printed no JSON: ${r.stdout}`);
  return r.json as Record<string, unknown>;
}

/** `xsplice get PID NAME --json`'s state. */
export async function stateOf(pid: number, name: string): Promise<string> {
  const doc = await xs(["get", String(pid), name]);
  return String(doc["state"]);
}

/** Send `text` on a new connection to 127.0.0.1:`port`, half-close, return everything the server sent. */
export function oneShot(port: number, text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const sock = connect(port, "127.0.0.1");
    const chunks: Buffer[] = [];
    sock.setTimeout(WAIT_MS, () =>
      sock.destroy(new Error(`no answer from port ${port} to ${JSON.stringify(text)}`)),
    );
    sock.on("connect", () => sock.end(text));
    sock.on("data", (d) => chunks.push(d));
    sock.on("error", reject);
    sock.on("close", () => resolve(Buffer.concat(chunks).toString("latin1")));
  });
}

/** A connection kept open across several requests. */
export interface Connection {
  /** Send `text`, resolve with the next `bytes` bytes the server sends. */
  ask(text: string, bytes: number): Promise<string>;
  close(): void;
}

/** Open a connection to 127.0.0.1:`port` that stays open until `close()`. */
export function openConnection(port: number): Promise<Connection> {
  return new Promise((resolve, reject) => {
    const sock = connect(port, "127.0.0.1");
    let buffered = Buffer.alloc(0);
    let want: { bytes: number; resolve: (s: string) => void; reject: (e: Error) => void } | undefined;
    const deliver = () => {
      if (want && buffered.length >= want.bytes) {
        const w = want;
        want = undefined;
        const text = buffered.subarray(0, w.bytes).toString("latin1");
        buffered = buffered.subarray(w.bytes);
        w.resolve(text);
      }
    };
    sock.on("data", (d) => {
      buffered = Buffer.concat([buffered, d]);
      deliver();
    });
    sock.on("error", (e) => want?.reject(e));
    sock.on("close", () => want?.reject(new Error("connection closed by the server")));
    sock.once("error", reject);
    sock.once("connect", () =>
      resolve({
        ask: (text, bytes) =>
          new Promise((res, rej) => {
            const timer = setTimeout(
              () => rej(new Error(`no ${bytes}-byte answer to ${JSON.stringify(text)}`)),
              WAIT_MS,
            );
            want = {
              bytes,
              resolve: (s) => {
                clearTimeout(timer);
                res(s);
              },
              reject: (e) => {
                clearTimeout(timer);
                rej(e);
              },
            };
            sock.write(text);
            deliver();
          }),
        close: () => sock.destroy(),
      }),
    );
  });
}
