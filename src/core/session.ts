/**
 * Exclusive access to one target process for the span of one operation.
 *
 * The seize is the lock (SPEC §5 "two xsplice processes working on the same
 * target serialise"): Linux lets one tracer hold a thread, so the xsplice run
 * that holds the target seized is the only writer of its registry and code.
 * No lock word is needed, and a killed run releases the lock with its death
 * (the kernel detaches). A run that finds the target held by another xsplice
 * waits and retries; any other tracer (gdb, strace) is `EBUSY` at once.
 */
import { readFileSync } from "node:fs";
import { XspliceError } from "../errors.ts";
import { getpid } from "../process/libc.ts";
import { finishLeftoverInjections } from "../process/remote-call.ts";
import { sleepSync, Tracee } from "../process/threads.ts";
import { type TracerInfo, tracerInfo } from "../process/tracer.ts";
import { isInProgress } from "./actions.ts";
import {
  commitRegistry,
  type RegistryMemory,
  type RegistrySnapshot,
  readRegistry,
} from "./registry/format.ts";
import { emptyRegistry, type RegistryState } from "./registry/records.ts";
import { createRegistry, findRegistry, readTargetRegistry } from "./registry/remote.ts";

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
  /** Time to get every thread stopped on each seize attempt, in ms (default 1000). */
  stopTimeoutMs?: number;
  /**
   * Run right after the seize, threads stopped, before the caller sees the
   * session (default: every hook given to `addOpenHook`). Journal recovery
   * (SPEC §8) goes here: an operation a killed run left half done is completed
   * or rolled back before anything else happens.
   */
  onOpen?: ((session: TargetSession) => void)[];
}

/** One target process held exclusively (seized) by this xsplice run. */
export interface TargetSession {
  readonly pid: number;
  /** The seized process. Stopped after `openTarget`; see `stop()`/`run()`. */
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
  /** The target's memory as the registry code sees it. */
  readonly memory: RegistryMemory;
  /** Make `state` the registry's state (creating the registry mapping when absent). */
  commit(state: RegistryState): void;
  /** Re-read the registry from the target (after a hook or a remote call may have run). */
  refresh(): void;
  /** Stop every thread (no-op when stopped). */
  stop(timeoutMs?: number): void;
  /** Let every thread run, still seized; service their stops with `poll()` during long work. */
  run(): void;
  /** Deliver signals and adopt threads of a running, seized process. */
  poll(): void;
  /** Detach (threads keep running as before). Safe to call twice. */
  close(): void;
}

const openHooks: ((session: TargetSession) => void)[] = [];

/**
 * Register a hook that every `openTarget` runs after the seize (unless the
 * caller passes its own `onOpen`). The actions module registers journal
 * recovery here.
 */
export function addOpenHook(hook: (session: TargetSession) => void): void {
  if (!openHooks.includes(hook)) openHooks.push(hook);
}

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
      return Tracee.seize(pid, { timeoutMs: opts.stopTimeoutMs ?? 1000 });
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
  readonly memory: RegistryMemory;
  base: bigint | undefined;
  snapshot: RegistrySnapshot | undefined;

  constructor(tracee: Tracee) {
    this.tracee = tracee;
    this.pid = tracee.pid;
    this.tid = tracee.threads.includes(tracee.pid) ? tracee.pid : tracee.threads[0]!;
    this.memory = tracee.memory;
    this.refresh();
  }

  get state(): RegistryState {
    return this.snapshot?.state ?? emptyRegistry();
  }

  get generation(): bigint {
    return this.snapshot?.generation ?? 0n;
  }

  refresh(): void {
    this.base = findRegistry(this.pid);
    this.snapshot = this.base === undefined ? undefined : readRegistry(this.memory, this.base);
  }

  commit(state: RegistryState): void {
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
    if (!this.tracee.stopped) this.tracee.quiesce({ timeoutMs: timeoutMs ?? 1000 });
  }

  run(): void {
    if (this.tracee.stopped) this.tracee.resume();
  }

  poll(): void {
    if (this.tracee.isAttached && !this.tracee.stopped) this.tracee.poll();
  }

  close(): void {
    try {
      this.tracee.detach();
    } catch (err) {
      if (!(err instanceof XspliceError) || err.errno !== "ESRCH") throw err;
    }
  }
}

/**
 * Seize `pid` exclusively and read its registry; returns with every thread
 * stopped. Waits (up to `waitMs`) while another xsplice run holds it; `EBUSY`
 * at once when another tracer holds it or, with `forPayload`, when an action
 * on that payload is in progress. The caller must `close()` in `finally`.
 */
export function openTarget(pid: number, opts: OpenOptions = {}): TargetSession {
  if (!Number.isSafeInteger(pid) || pid <= 0) throw new XspliceError("ESRCH", `no process ${pid}`, { pid });
  const tracee = seizeExclusive(pid, opts);
  let session: Session | undefined;
  try {
    session = new Session(tracee);
    // A thread a killed run left in the inject stub has its real pc and stack only in the
    // stub's slot; put it back before anything (recovery's safe stop included) looks at it.
    finishLeftoverInjections(tracee);
    for (const hook of opts.onOpen ?? openHooks) hook(session);
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
