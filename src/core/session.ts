/**
 * Exclusive access to one target process for the span of one operation.
 *
 * The seize is the lock (SPEC §5 "two xsplice processes working on the same
 * target serialise"): Linux lets one tracer hold a thread, so the xsplice run
 * that holds the target seized is the only writer of its registry and code.
 * No lock word is needed, and a killed run releases the lock with its death
 * (the kernel detaches). A run that finds the target held by another xsplice
 * waits and retries; any other tracer (gdb, strace) is `EBUSY` at once.
 *
 * The seize does not stop the target (SPEC §6: only the writes that must be
 * atomic happen while stopped). `openTarget` stops it only when a killed run
 * left something to put right first — a journal to roll back, a thread inside
 * an injection — and then does that, explicitly, before the caller sees the
 * session (SPEC §8). Whether a run recovers never depends on what was imported.
 */
import { readFileSync } from "node:fs";
import { XspliceError } from "../errors.ts";
import { injectPageLeftovers } from "../process/inject-page.ts";
import { getpid } from "../process/libc.ts";
import type { ProcessMemory } from "../process/memory.ts";
import type { StopBoost } from "../process/priority.ts";
import {
  finishLeftoverInjections,
  finishLeftoverInjectPage,
  injectionEvidence,
  injectionLeftoversPossible,
} from "../process/remote-call.ts";
import { sleepSync, Tracee } from "../process/threads.ts";
import { type TracerInfo, tracerInfo } from "../process/tracer.ts";
import { isInProgress } from "./actions.ts";
import { createContext, type XspliceContext } from "./context.ts";
import { type RecoveryReport, recover } from "./recovery.ts";
import {
  commitRegistry,
  initRegistry,
  isUninitialised,
  type RegistrySnapshot,
  readRegistry,
} from "./registry/format.ts";
import { emptyRegistry, type RegistryState } from "./registry/records.ts";
import {
  closeLeakedRegistryDescriptors,
  createRegistry,
  findRegistryMapping,
  leakedRegistryDescriptors,
  readTargetRegistry,
} from "./registry/remote.ts";

/** The process title `bin/xsplice.js` sets, by which a waiting run recognises another xsplice. */
export const XSPLICE_TITLE = "xsplice";

/** Options of `openTarget`. */
export interface OpenOptions {
  /** How long to wait for another xsplice run that holds the target, in ms (default 10000). Then `EBUSY`. */
  waitMs?: number;
  /**
   * The payload the caller will act on: when its rc is `-EAGAIN` while another
   * xsplice holds the target, an action on it is in progress and this one is
   * `EBUSY` at once (SPEC §5) rather than queued behind it.
   */
  forPayload?: string;
  /**
   * Put right what a killed run left (default true): threads inside an
   * injection are put back, a journaled operation is rolled back (SPEC §8).
   * Only tests that look at such leftovers themselves turn it off.
   */
  recover?: boolean;
  /** The caches to use (default: a fresh context, nothing kept after the call). */
  context?: XspliceContext;
  /** How xsplice raises its own thread while the target is stopped (default `DEFAULT_BOOST`). */
  boost?: StopBoost;
}

/** What `openTarget` found and put right before handing out the session. */
export interface OpenReport {
  /** Threads a killed run left inside an injection, put back. */
  threadsPutBack: number;
  /** The journaled operation rolled back, if there was one. */
  recovered?: RecoveryReport;
}

/** One target process held exclusively (seized) by this xsplice run. */
export interface TargetSession {
  readonly pid: number;
  /** The seized process. Running after `openTarget`; see `stop()`/`run()`. */
  readonly tracee: Tracee;
  /** A thread to run remote system calls on (the main thread when it is alive). */
  readonly tid: number;
  /** Base of the registry mapping, or undefined while the process has none. */
  readonly base: bigint | undefined;
  /** The registry as last read or committed; undefined while the process has none. */
  readonly snapshot: RegistrySnapshot | undefined;
  /** The current registry state (empty when the process has no registry yet). */
  readonly state: RegistryState;
  /** The registry generation the state was read or committed as (0 when none). */
  readonly generation: bigint;
  /** The target's memory (the held descriptor, see `ProcessMemory`). */
  readonly memory: ProcessMemory;
  /** The caches this session's operations use. */
  readonly context: XspliceContext;
  /** What opening found and put right. */
  readonly opened: OpenReport;
  /** Make `state` the registry's state (creating the registry mapping when absent). */
  commit(state: RegistryState): void;
  /** Re-read the registry from the target (after a hook or a remote call may have run). */
  refresh(): void;
  /**
   * Stop every thread (no-op when stopped), riding out a busy host: an attempt
   * that does not get every thread in time is released and retried with
   * backoff; `EBUSY` (`where.busy` "stop") after the last.
   */
  stop(timeoutMs?: number): void;
  /** Let every thread run, still seized; service their stops with `poll()` during long work. */
  run(): void;
  /** Deliver signals and adopt threads of a running, seized process. */
  poll(): void;
  /** Detach (threads keep running as before); straight from a stop when stopped. Safe to call twice. */
  close(): void;
}

/**
 * How long one attempt at stopping every thread may take, in ms: it is
 * scheduling latency, not the target's doing, so it grows with the threads to
 * stop and does not come out of an action's `--timeout` (which bounds the
 * safety check, SPEC §5). A stop that misses it is released and tried again,
 * `STOP_ATTEMPTS` times in all, with backoff.
 */
export function stopDeadlineMs(threads: number): number {
  return 250 + 5 * threads;
}

/** Attempts at stopping every thread before `EBUSY` (`where.busy` "stop"). */
export const STOP_ATTEMPTS = 4;

function isXsplice(t: TracerInfo): boolean {
  if (t.comm === XSPLICE_TITLE) return true;
  try {
    // A library user whose title is not ours, running our entry point.
    const argv = readFileSync(`/proc/${t.pid}/cmdline`, "utf8").split("\0");
    return argv.some((a) => /(^|\/)xsplice(\.js)?$/.test(a));
  } catch {
    return false;
  }
}

function describeHolder(t: TracerInfo): string {
  return `PID ${t.pid} (${t.comm})`;
}

/**
 * The SPEC §5 "second action on the same payload" check, done without
 * seizing: a journaled `-EAGAIN` (`isInProgress`) while some xsplice holds the
 * target means an action on it is running. Without a holder it is a killed
 * run's leftover, which recovery after the seize resolves.
 */
function checkInProgress(pid: number, name: string, holder: TracerInfo): void {
  const snap = readTargetRegistry(pid);
  const p = snap?.state.payloads.find((x) => x.name === name);
  if (snap && p && isInProgress(snap.state, p))
    throw new XspliceError("EBUSY", `an action on '${name}' is in progress (by ${describeHolder(holder)})`, {
      pid,
    });
}

function seizeExclusive(pid: number, opts: OpenOptions): Tracee {
  const waitMs = opts.waitMs ?? 10_000;
  const deadline = performance.now() + waitMs;
  const self = getpid();
  for (let round = 0; ; round++) {
    const holder = tracerInfo(pid);
    if (holder) {
      if (holder.pid === self)
        throw new XspliceError("EBUSY", `process ${pid} is already held by this xsplice process`, { pid });
      if (!isXsplice(holder))
        throw new XspliceError("EBUSY", `process ${pid} is already traced by ${describeHolder(holder)}`, {
          pid,
        });
      if (opts.forPayload !== undefined) checkInProgress(pid, opts.forPayload, holder);
      if (performance.now() >= deadline)
        throw new XspliceError(
          "EBUSY",
          `process ${pid} is held by another xsplice, ${describeHolder(holder)}, for more than ${waitMs} ms`,
          { pid },
        );
      sleepSync(Math.min(20, 1 + round));
      continue;
    }
    try {
      return Tracee.seize(pid, { stop: false, timeoutMs: 5000, boost: opts.boost });
    } catch (err) {
      // Lost a race with another run between the check and the seize: go round.
      if (err instanceof XspliceError && err.errno === "EBUSY" && tracerInfo(pid) !== undefined) continue;
      throw err;
    }
  }
}

class Session implements TargetSession {
  readonly pid: number;
  readonly tracee: Tracee;
  readonly tid: number;
  readonly memory: ProcessMemory;
  readonly context: XspliceContext;
  opened: OpenReport = { threadsPutBack: 0 };
  base: bigint | undefined;
  snapshot: RegistrySnapshot | undefined;
  /** A registry mapping a killed creator left before writing its magic: initialised, not made again. */
  private unfinished: bigint | undefined;

  constructor(tracee: Tracee, context: XspliceContext) {
    this.tracee = tracee;
    this.pid = tracee.pid;
    this.tid = tracee.threads.includes(tracee.pid) ? tracee.pid : tracee.threads[0]!;
    this.memory = tracee.memory;
    this.context = context;
    this.refresh();
  }

  get state(): RegistryState {
    return this.snapshot?.state ?? emptyRegistry();
  }

  get generation(): bigint {
    return this.snapshot?.generation ?? 0n;
  }

  refresh(): void {
    this.tracee.checkSameProgram();
    const found = findRegistryMapping(this.pid);
    const base = found?.base;
    // Mapped but never initialised (its creator was killed, issue #11 item 3): no registry yet.
    if (base !== undefined && isUninitialised(this.memory, base)) {
      this.base = undefined;
      this.unfinished = base;
      this.snapshot = undefined;
      return;
    }
    this.base = base;
    this.unfinished = undefined;
    this.snapshot = base === undefined ? undefined : readRegistry(this.memory, base, found?.size);
  }

  commit(state: RegistryState): void {
    this.tracee.checkSameProgram();
    if (this.base === undefined && this.unfinished !== undefined) {
      initRegistry(this.memory, this.unfinished, state);
      this.base = this.unfinished;
      this.unfinished = undefined;
      this.snapshot = { state, generation: 1n };
      return;
    }
    if (this.base === undefined) {
      const wasRunning = !this.tracee.stopped;
      if (wasRunning) this.stop();
      try {
        this.base = createRegistry(this.tracee, this.tid, state).base;
      } finally {
        if (wasRunning) this.run();
      }
      this.snapshot = { state, generation: 1n };
      return;
    }
    const generation = commitRegistry(this.memory, this.base, state);
    this.snapshot = { state, generation };
  }

  stop(timeoutMs?: number): void {
    for (let attempt = 1; !this.tracee.stopped; attempt++) {
      try {
        this.tracee.quiesce({ timeoutMs: timeoutMs ?? stopDeadlineMs(this.tracee.threads.length) });
      } catch (err) {
        if (!(err instanceof XspliceError) || err.errno !== "EBUSY") throw err;
        this.run(); // the threads that did stop run again meanwhile
        if (attempt >= STOP_ATTEMPTS)
          throw new XspliceError(
            "EBUSY",
            `could not stop every thread of process ${this.pid} in ${attempt} attempts (the host is too busy): ${err.message}`,
            { ...err.where, busy: "stop" },
            { cause: err },
          );
        // Back off with jitter, servicing the process meanwhile.
        sleepSync(Math.min(50, 2 ** attempt) * (0.5 + Math.random()));
        this.poll();
      }
    }
  }

  run(): void {
    // Also after a stop that failed half-way: every thread that did stop runs again.
    if (this.tracee.isAttached) this.tracee.resume();
  }

  poll(): void {
    if (this.tracee.isAttached && !this.tracee.stopped) this.tracee.poll();
  }

  close(): void {
    try {
      this.tracee.detach({ timeoutMs: stopDeadlineMs(this.tracee.threads.length) });
    } catch (err) {
      if (!(err instanceof XspliceError) || err.errno !== "ESRCH") throw err;
    }
  }
}

/**
 * Put right what a killed run left, in the order that makes each step safe:
 * first threads inside an injection (until they are back, their real pc and
 * stack are only in the stub's save area, so no stack check could see them),
 * then the journal (rolled back in a safe stop of its own). A process with
 * neither is not stopped at all.
 */
function putRight(session: Session): OpenReport {
  const report: OpenReport = { threadsPutBack: 0 };
  // What the dead run's inject slots show, read before putting their threads back releases them.
  const evidence = session.state.journal ? injectionEvidence(session.tracee) : [];
  // A killed creation of the inject page leaves a descriptor or a half-made page: made now, they go.
  const pageLeftovers = injectPageLeftovers(session.pid);
  const registryFds = leakedRegistryDescriptors(session.pid).length > 0;
  if (pageLeftovers || registryFds || injectionLeftoversPossible(session.tracee)) {
    session.stop();
    try {
      report.threadsPutBack = finishLeftoverInjections(session.tracee);
      if (pageLeftovers) finishLeftoverInjectPage(session.tracee, session.tid);
      if (registryFds) closeLeakedRegistryDescriptors(session.tracee, session.tid);
    } finally {
      session.run();
    }
  }
  if (session.state.journal) report.recovered = recover(session, { evidence });
  return report;
}

/**
 * Seize `pid` exclusively, read its registry and put right what a killed run
 * left (unless `recover: false`); returns with the process running, held.
 * Waits (up to `waitMs`) while another xsplice run holds it; `EBUSY` at once
 * when another tracer holds it or, with `forPayload`, when an action on that
 * payload is in progress. The caller must `close()` in `finally`.
 */
export function openTarget(pid: number, opts: OpenOptions = {}): TargetSession {
  if (!Number.isSafeInteger(pid) || pid <= 0) throw new XspliceError("ESRCH", `no process ${pid}`, { pid });
  const tracee = seizeExclusive(pid, opts);
  let session: Session | undefined;
  try {
    session = new Session(tracee, opts.context ?? createContext());
    if (opts.recover !== false) session.opened = putRight(session);
    return session;
  } catch (err) {
    try {
      tracee.detach();
    } catch {
      // Already failing; the first error is the one to report.
    }
    throw err;
  }
}

/** Run `fn` with `pid` held exclusively, closing the session whatever happens. */
export function withTarget<T>(pid: number, opts: OpenOptions, fn: (session: TargetSession) => T): T {
  const session = openTarget(pid, opts);
  try {
    return fn(session);
  } finally {
    session.close();
  }
}
