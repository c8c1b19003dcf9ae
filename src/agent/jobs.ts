/**
 * One operation on one process, as the `--all` fan-out and the agent hand it
 * to a worker (`_worker.ts`), and what came of it. Plain data, so it crosses
 * a process boundary unchanged.
 */
import { action, load } from "../core/api.ts";
import { createContext } from "../core/context.ts";
import { performAction } from "../core/execute.ts";
import type { State } from "../core/registry/records.ts";
import { ERRNO, type ErrnoName, XspliceError } from "../errors.ts";
import type { TrustedKey } from "../payload/index.ts";
import type { StopLedger } from "../process/threads.ts";
import { type ConvergeStep, convergeProcess, type WantedPayload } from "./converge.ts";

/** The upload policy a job runs under (SPEC §9), as `src/cli/policy.ts` computes it. */
export interface JobPolicy {
  requireSignature: boolean;
  trustedKeys: TrustedKey[];
  maxSize: number;
}

/** Options every action job takes (SPEC §5 timeout, `--retry-for`). */
export interface JobTiming {
  timeoutMs?: number;
  retryForMs?: number;
}

/** An operation on process `pid`. */
export type Job =
  | ({
      op: "load";
      pid: number;
      name: string;
      bytes: Uint8Array;
      policy: JobPolicy;
      nodeps?: boolean;
    } & JobTiming)
  | ({ op: "revert" | "apply" | "replace"; pid: number; name: string; nodeps?: boolean } & JobTiming)
  | { op: "unload"; pid: number; name: string }
  | ({ op: "converge"; pid: number; wanted: WantedPayload[]; policy: JobPolicy } & JobTiming);

/** What a job did. */
export type JobOutcome =
  | {
      pid: number;
      ok: true;
      state: State | "UNLOADED" | "CONVERGED";
      pause?: StopLedger;
      ms: number;
      steps?: ConvergeStep[];
    }
  | {
      pid: number;
      ok: false;
      error: ErrnoName;
      errno: number;
      message: string;
      ms: number;
      steps?: ConvergeStep[];
    };

/** Turn anything thrown into a one-line failure (an unexpected JS error is reported as EIO). */
export function failure(pid: number, err: unknown, ms: number): JobOutcome {
  const e =
    err instanceof XspliceError
      ? err
      : new XspliceError("EIO", err instanceof Error ? err.message : String(err));
  return {
    pid,
    ok: false,
    error: e.errno,
    errno: ERRNO[e.errno],
    message: e.message.replace(/\n/g, " "),
    ms,
  };
}

/**
 * This process's caches, kept across jobs: a worker is one tracer running job
 * after job, mostly on processes of the same few programs, and re-reading and
 * re-parsing their mapped objects (libc included) for every job is most of a
 * warm `load` (measured: 51-80 ms → 16-21 ms median, bench/agent.bench.ts).
 */
const context = createContext();

/**
 * Carry out `job` here, synchronously (ptrace stays on this thread, SPEC
 * §12); never throws.
 */
export async function runJob(job: Job): Promise<JobOutcome> {
  const start = performance.now();
  const ms = () => performance.now() - start;
  try {
    switch (job.op) {
      case "load": {
        const r = load(job.pid, job.name, job.bytes, {
          ...job.policy,
          timeoutMs: job.timeoutMs,
          retryForMs: job.retryForMs,
          flags: { nodeps: job.nodeps === true },
          context,
        });
        return { pid: job.pid, ok: true, state: r.state, pause: r.pause, ms: ms() };
      }
      case "apply":
      case "revert":
      case "replace": {
        const cmd = job.op === "apply" ? "APPLY" : job.op === "revert" ? "REVERT" : "REPLACE";
        const r = performAction(job.pid, job.name, cmd, {
          timeoutMs: job.timeoutMs,
          retryForMs: job.retryForMs,
          flags: { nodeps: job.nodeps === true },
          context,
        });
        return { pid: job.pid, ok: true, state: r.state, pause: r.pause, ms: ms() };
      }
      case "unload":
        await action(job.pid, job.name, "UNLOAD");
        return { pid: job.pid, ok: true, state: "UNLOADED", ms: ms() };
      case "converge": {
        const steps = await convergeProcess(job.pid, job.wanted, job.policy, job, context);
        const bad = steps.find((x) => !x.ok);
        if (!bad) return { pid: job.pid, ok: true, state: "CONVERGED", ms: ms(), steps };
        const errno = (bad.error ?? "EIO") as ErrnoName;
        return {
          pid: job.pid,
          ok: false,
          error: errno,
          errno: ERRNO[errno] ?? 5,
          message: `${bad.action} ${bad.payload}: ${bad.message ?? ""}`,
          ms: ms(),
          steps,
        };
      }
      default: {
        const never: never = job;
        throw new XspliceError("EINVAL", `unknown job ${JSON.stringify(never)}`);
      }
    }
  } catch (err) {
    return failure(job.pid, err, ms());
  }
}
