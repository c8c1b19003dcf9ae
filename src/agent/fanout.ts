/**
 * Bounded parallel runner for operations on many processes (`--all`, the
 * agent).
 *
 * Concurrency is by worker **processes**, not worker threads: ptrace belongs
 * to the OS thread that attached (SPEC §12) and every xsplice operation is a
 * synchronous run of ptrace calls, so each concurrent target needs a thread
 * of its own for the whole operation. A child process per slot gives that
 * and keeps the assumptions the rest of xsplice makes about its tracer: the
 * tracer's pid is the process's pid and its name is `xsplice` (`session.ts`
 * recognises another xsplice by both), per-process caches and the
 * SCHED_FIFO boost stay per tracer, and a crash in one target's run cannot
 * take the others down. The cost is one Node start-up per slot (about a
 * second here), paid once: a worker runs job after job.
 *
 * A job that fails is reported in its outcome and never stops the others; a
 * worker that dies fails its job with `EIO` and is replaced.
 */
import { type ChildProcess, fork } from "node:child_process";
import { availableParallelism } from "node:os";
import { fileURLToPath } from "node:url";
import { failure, type Job, type JobOutcome } from "./jobs.ts";

/** Progress of a fan-out, after each job. */
export interface FanoutProgress {
  done: number;
  total: number;
  failed: number;
}

/** Options of `fanout`. */
export interface FanoutOptions {
  /** Jobs at once (default: the number of CPUs). */
  concurrency?: number;
  /** Called after each job with the counts so far. */
  onProgress?: (p: FanoutProgress) => void;
}

/** The default `-j`: one worker per CPU. */
export function defaultConcurrency(): number {
  return Math.max(1, availableParallelism());
}

const WORKER = fileURLToPath(new URL("./_worker.ts", import.meta.url));

/** Start a worker process (TypeScript through tsx's loader, as `bin/xsplice.js` runs). */
function startWorker(): ChildProcess {
  return fork(WORKER, [], {
    execArgv: ["--import", import.meta.resolve("tsx")],
    serialization: "advanced",
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
}

/**
 * Run `jobs`, at most `concurrency` at once, each in a worker process; the
 * outcomes come back in the order of `jobs`. Never rejects for a job's sake.
 */
export async function fanout(jobs: readonly Job[], opts: FanoutOptions = {}): Promise<JobOutcome[]> {
  const outcomes: JobOutcome[] = new Array(jobs.length);
  if (jobs.length === 0) return outcomes;
  const slots = Math.max(1, Math.min(opts.concurrency ?? defaultConcurrency(), jobs.length));
  let next = 0;
  let done = 0;
  let failed = 0;
  const record = (i: number, o: JobOutcome) => {
    outcomes[i] = o;
    done++;
    if (!o.ok) failed++;
    opts.onProgress?.({ done, total: jobs.length, failed });
  };

  const runSlot = async (): Promise<void> => {
    let worker: ChildProcess | undefined;
    try {
      while (next < jobs.length) {
        const i = next++;
        const job = jobs[i]!;
        worker ??= startWorker();
        const w = worker;
        const started = performance.now();
        const outcome = await new Promise<JobOutcome>((resolve) => {
          const onMessage = (msg: { id: number; outcome: JobOutcome }) => {
            if (msg.id !== i) return;
            cleanup();
            resolve(msg.outcome);
          };
          const onExit = (code: number | null, signal: string | null) => {
            cleanup();
            worker = undefined; // the next job gets a fresh worker
            resolve(
              failure(
                job.pid,
                new Error(`xsplice worker ${w.pid} died (${signal ?? `exit ${code}`})`),
                performance.now() - started,
              ),
            );
          };
          const cleanup = () => {
            w.off("message", onMessage);
            w.off("exit", onExit);
          };
          w.on("message", onMessage);
          w.on("exit", onExit);
          w.send({ id: i, job });
        });
        record(i, outcome);
      }
    } finally {
      if (worker?.connected) worker.disconnect();
    }
  };
  await Promise.all(Array.from({ length: slots }, runSlot));
  return outcomes;
}
