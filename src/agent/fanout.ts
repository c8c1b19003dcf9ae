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
import { childEntry } from "./child-entry.ts";
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

/** Start a worker process. */
function startWorker(): ChildProcess {
  const worker = childEntry("_worker.ts", "agent-worker.js");
  return fork(worker.file, [], {
    execArgv: worker.execArgv,
    serialization: "advanced",
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
}

/**
 * A fixed number of worker processes that run jobs, each job on one worker
 * from start to end; jobs beyond the workers wait their turn in order. Workers
 * start on first use and are kept (the agent keeps its pool warm so a new
 * process is not made to wait for a Node start-up).
 */
export class WorkerPool {
  private readonly idle: ChildProcess[] = [];
  private readonly queue: { job: Job; resolve: (o: JobOutcome) => void }[] = [];
  private started = 0;
  private nextId = 0;
  private closed = false;

  /** A pool of at most `size` workers. */
  constructor(readonly size: number) {}

  /**
   * Run `job` on a worker; never rejects (a dead worker fails the job with `EIO`). An `urgent`
   * job (a new process waiting at its entry point) goes before every queued one.
   */
  run(job: Job, opts: { urgent?: boolean } = {}): Promise<JobOutcome> {
    return new Promise((resolve) => {
      if (opts.urgent) this.queue.unshift({ job, resolve });
      else this.queue.push({ job, resolve });
      this.pump();
    });
  }

  /** Start every worker now rather than on first use. */
  warm(): void {
    while (this.started < this.size) this.idle.push(this.spawn());
  }

  /** The pids of the workers (to leave out of scans). */
  pids(): number[] {
    return this.all.map((w) => w.pid).filter((p): p is number => p !== undefined);
  }

  /** Let the workers go once their current jobs end. */
  close(): void {
    this.closed = true;
    for (const w of this.idle.splice(0)) if (w.connected) w.disconnect();
  }

  private readonly all: ChildProcess[] = [];

  private spawn(): ChildProcess {
    const w = startWorker();
    this.started++;
    this.all.push(w);
    w.once("exit", () => {
      this.started--;
      this.all.splice(this.all.indexOf(w), 1);
      const i = this.idle.indexOf(w);
      if (i >= 0) this.idle.splice(i, 1);
    });
    return w;
  }

  private pump(): void {
    while (this.queue.length > 0 && !this.closed) {
      const w = this.idle.pop() ?? (this.started < this.size ? this.spawn() : undefined);
      if (!w) return;
      const { job, resolve } = this.queue.shift()!;
      this.dispatch(w, job, resolve);
    }
  }

  private dispatch(w: ChildProcess, job: Job, resolve: (o: JobOutcome) => void): void {
    const id = this.nextId++;
    const started = performance.now();
    const cleanup = () => {
      w.off("message", onMessage);
      w.off("exit", onExit);
    };
    const onMessage = (msg: { id: number; outcome: JobOutcome }) => {
      if (msg.id !== id) return;
      cleanup();
      if (this.closed) {
        if (w.connected) w.disconnect();
      } else this.idle.push(w);
      resolve(msg.outcome);
      this.pump();
    };
    const onExit = (code: number | null, signal: string | null) => {
      cleanup();
      resolve(
        failure(
          job.pid,
          new Error(`xsplice worker ${w.pid} died (${signal ?? `exit ${code}`})`),
          performance.now() - started,
        ),
      );
      this.pump();
    };
    w.on("message", onMessage);
    w.on("exit", onExit);
    w.send({ id, job });
  }
}

/**
 * Run `jobs`, at most `concurrency` at once, each in a worker process; the
 * outcomes come back in the order of `jobs`. Never rejects for a job's sake.
 */
export async function fanout(jobs: readonly Job[], opts: FanoutOptions = {}): Promise<JobOutcome[]> {
  if (jobs.length === 0) return [];
  const pool = new WorkerPool(Math.max(1, Math.min(opts.concurrency ?? defaultConcurrency(), jobs.length)));
  let done = 0;
  let failed = 0;
  try {
    return await Promise.all(
      jobs.map(async (job) => {
        const o = await pool.run(job);
        done++;
        if (!o.ok) failed++;
        opts.onProgress?.({ done, total: jobs.length, failed });
        return o;
      }),
    );
  } finally {
    pool.close();
  }
}
