/**
 * `--all` for `load`, `revert` and `unload` (SPEC §14): one operation on every
 * process it concerns, at most `-j N` at once (default: the number of CPUs),
 * each process independent of the others (`src/agent/fanout.ts`). A progress
 * line goes to stderr, a table (or, with `--json`, `{"results", "ok",
 * "failed"}`) to stdout; exit 0 when every process succeeded, 2 when the only
 * failures were worth retrying (`EBUSY`, `EAGAIN`), 1 otherwise.
 */

import { type FoundProcess, processesMapping, processesWithPayload } from "../agent/discover.ts";
import { defaultConcurrency, type FanoutProgress, fanout } from "../agent/fanout.ts";
import type { Job, JobOutcome } from "../agent/jobs.ts";
import { checkName, checkSignature, checkSize } from "../core/load/validate.ts";
import { isRetryable, XspliceError } from "../errors.ts";
import { hexBytes } from "../hex.ts";
import { readPayloadFile } from "../payload/file.ts";
import { readPayload } from "../payload/index.ts";
import { retryForOf, timeoutOf } from "./apply.ts";
import type { CommandInput, CommandResult } from "./command.ts";
import { uploadPolicy } from "./policy.ts";

/** The options `--all` adds to a command. */
export const ALL_OPTIONS = { all: { type: "boolean" }, jobs: { type: "string", short: "j" } } as const;

/** True when the command line asks for `--all`. */
export function isAll(input: { values: CommandInput["values"] }): boolean {
  return input.values["all"] === true;
}

/** `-j N`: a positive integer, at most 256; default one per CPU. */
export function concurrencyOf(input: CommandInput): number {
  const v = input.values["jobs"];
  if (v === undefined) return defaultConcurrency();
  const n = Number(v);
  if (typeof v !== "string" || !/^\d+$/.test(v) || n < 1 || n > 256)
    throw new XspliceError("EINVAL", `-j ${String(v)} is not a number of jobs from 1 to 256`);
  return n;
}

/** Reject `--all`'s own options without `--all`, so `-j 4` never silently means one process. */
export function checkNotAll(input: CommandInput): void {
  if (input.values["jobs"] !== undefined) throw new XspliceError("EINVAL", "-j is only for --all");
}

/** One row of the result: the process, and the job's outcome. */
export type AllResult = JobOutcome & { comm: string };

function progressPrinter(op: string): (p: FanoutProgress) => void {
  const tty = process.stderr.isTTY === true;
  let lastTenth = -1;
  return (p) => {
    const line = `xsplice: ${op}: ${p.done}/${p.total} done, ${p.failed} failed`;
    if (tty) {
      process.stderr.write(`\r${line}${p.done === p.total ? "\n" : ""}`);
      return;
    }
    // Not a terminal (a log): a line per tenth of the way, not one per process.
    const tenth = Math.floor((p.done * 10) / p.total);
    if (tenth !== lastTenth || p.done === p.total) {
      lastTenth = tenth;
      process.stderr.write(`${line}\n`);
    }
  };
}

function table(rows: AllResult[]): string {
  const head = `${"PID".padEnd(8)} ${"COMM".padEnd(16)} ${"RESULT".padEnd(7)} ${"STATE".padEnd(9)} ${"PAUSE ms".padEnd(9)} ERROR`;
  const lines = rows.map((r) => {
    const pause = r.ok && r.pause ? r.pause.totalMs.toFixed(3) : "-";
    const state = r.ok ? r.state : "-";
    const error = r.ok ? "" : `${r.error}: ${r.message}`;
    return `${String(r.pid).padEnd(8)} ${r.comm.padEnd(16)} ${(r.ok ? "ok" : "FAILED").padEnd(7)} ${state.padEnd(9)} ${pause.padEnd(9)} ${error}`.trimEnd();
  });
  return [head, ...lines].join("\n");
}

/**
 * Run one job per process and build the command's result: the SPEC §14 JSON,
 * the table, and the exit status.
 */
export async function runAll(
  op: string,
  targets: readonly FoundProcess[],
  makeJob: (t: FoundProcess) => Job,
  input: CommandInput,
  none: string,
): Promise<CommandResult> {
  const concurrency = concurrencyOf(input);
  const outcomes = await fanout(targets.map(makeJob), {
    concurrency,
    onProgress: input.json ? undefined : progressPrinter(op),
  });
  const rows: AllResult[] = outcomes.map((o, i) => ({ ...o, comm: targets[i]!.comm }));
  const failed = rows.filter((r) => !r.ok);
  const json = {
    results: rows.map((r) =>
      r.ok
        ? { pid: r.pid, comm: r.comm, ok: true, state: r.state, pause: r.pause ?? null }
        : {
            pid: r.pid,
            comm: r.comm,
            ok: false,
            state: null,
            error: r.error,
            errno: r.errno,
            message: r.message,
            pause: null,
          },
    ),
    ok: rows.length - failed.length,
    failed: failed.length,
  };
  const status = failed.length === 0 ? 0 : failed.every((r) => !r.ok && isRetryable(r.error)) ? 2 : 1;
  const summary = `${op}: ${json.ok} of ${rows.length} processes ok, ${json.failed} failed`;
  return {
    json,
    text: rows.length === 0 ? none : `${table(rows)}\n${summary}`,
    status,
  };
}

/** `load --all FILE`: every process that maps the payload's target build-id (SPEC §14). */
export async function loadAll(input: CommandInput, file: string, name: string): Promise<CommandResult> {
  checkName(name);
  // SPEC §9: the policy holds before any process is looked at; checked once here, and again by each load.
  const policy = uploadPolicy(input);
  const bytes = readPayloadFile(file, policy.maxSize);
  checkSize(bytes, policy.maxSize);
  checkSignature(bytes, policy);
  const target = hexBytes(readPayload(bytes, { maxSize: policy.maxSize }).target);
  const timeoutMs = timeoutOf(input);
  const retryForMs = retryForOf(input);
  const nodeps = input.values["nodeps"] === true;
  const targets = processesMapping(target);
  return runAll(
    `load --all ${name}`,
    targets,
    (t) => ({
      op: "load",
      pid: t.pid,
      name,
      bytes,
      policy: {
        requireSignature: policy.requireSignature,
        trustedKeys: policy.trustedKeys,
        maxSize: policy.maxSize,
      },
      nodeps,
      timeoutMs,
      retryForMs,
    }),
    input,
    `no process maps the target object of ${name} (build-id ${target})`,
  );
}

/** `revert --all NAME`: every process where NAME is APPLIED. */
export async function revertAll(input: CommandInput, name: string): Promise<CommandResult> {
  const timeoutMs = timeoutOf(input);
  const retryForMs = retryForOf(input);
  const targets = await processesWithPayload(name, ["APPLIED"]);
  return runAll(
    `revert --all ${name}`,
    targets,
    (t) => ({ op: "revert", pid: t.pid, name, timeoutMs, retryForMs }),
    input,
    `no process has ${name} applied`,
  );
}

/** `unload --all NAME`: every process that holds NAME (an APPLIED one fails with `EINVAL`, SPEC §5). */
export async function unloadAll(input: CommandInput, name: string): Promise<CommandResult> {
  const targets = await processesWithPayload(name);
  return runAll(
    `unload --all ${name}`,
    targets,
    (t) => ({ op: "unload", pid: t.pid, name }),
    input,
    `no process holds ${name}`,
  );
}
