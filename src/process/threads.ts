/**
 * Every thread of one live process under ptrace: seize, quiesce (stop all),
 * resume, detach (SPEC §6 "quiescing"). Built on the synchronous wrappers of
 * `libc.ts`; nothing here ever yields to the event loop while threads are
 * stopped, and every ptrace/waitpid call stays on the main thread (SPEC §12).
 *
 * Stopping uses `PTRACE_SEIZE` + `PTRACE_INTERRUPT`, which sends no signal, so
 * there is no SIGSTOP to hide from the target afterwards. `PTRACE_O_EXITKILL`
 * is deliberately not set: if xsplice dies, the kernel detaches and the target
 * keeps running.
 *
 * Signals (SPEC §6: "signals that arrive during the stop are delivered
 * afterwards"): a signal that a thread dequeues while we stop it shows up as a
 * signal-delivery-stop; we pass it straight on with `PTRACE_CONT(sig)` and
 * interrupt the thread again, so it is delivered exactly as if it had arrived
 * just before the stop, and never swallowed. Signals that arrive while threads
 * are stopped stay queued in the kernel (real-time ones keep their count and
 * values) and are dequeued after `resume()`.
 */
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { checkHost, type Regs } from "../arch/host.ts";
import { XspliceError } from "../errors.ts";
import {
  getpid,
  PTRACE_EVENT,
  PTRACE_O,
  ptraceCont,
  ptraceDetach,
  ptraceGetEventMsg,
  ptraceGetRegs,
  ptraceGetRegsInto,
  ptraceInterrupt,
  ptraceListen,
  ptraceSeize,
  ptraceSetRegs,
  type StopKind,
  signalName,
  WAIT,
  type WaitStatus,
  waitTid,
} from "./libc.ts";
import { ProcessMemory } from "./memory.ts";
import { boostThread, DEFAULT_BOOST, type StopBoost } from "./priority.ts";

/** Options for stopping a process. */
export interface StopOptions {
  /** Upper bound on the time to get every thread stopped, in ms (default 1000). Past it: `EBUSY`. */
  timeoutMs?: number;
}

/** Options of `Tracee.seize`. */
export interface SeizeOptions extends StopOptions {
  /** How the tracer raises itself while the process is stopped (default `DEFAULT_BOOST`). */
  boost?: StopBoost;
  /**
   * Stop every thread as part of the seize (default true). With false the
   * process keeps running, held: a caller that may not need a stop at all
   * (an action decides while the target runs, SPEC §6) pays for none.
   */
  stop?: boolean;
}

/** A `waitpid` report of a thread in a ptrace-stop. */
export type ThreadStop = WaitStatus & { kind: "stopped" };

/** How `Tracee.waitStop` waits for one thread that the caller restarted. */
export interface WaitStopOptions {
  /** `performance.now()` time after which the wait gives up (returns `"deadline"`). */
  deadline: number;
  /**
   * Whether a stop ends the wait (the thread then stays stopped) or is passed
   * over (the thread is continued, the stop's signal not delivered). Clone
   * events never reach it: the new thread is adopted and the wait goes on.
   */
  take: (st: ThreadStop) => boolean;
  /** Asked while the thread runs; true ends the wait with `"idle"` (the thread still running). */
  idle?: () => boolean;
}

/** What one traced thread is doing, from the tracer's point of view. */
interface ThreadState {
  tid: number;
  /** False while the thread sits in a ptrace-stop. */
  running: boolean;
  /** Kind of the current stop (meaningful when not running). */
  stop: StopKind;
}

const SEIZE_OPTIONS = PTRACE_O.TRACECLONE | PTRACE_O.TRACEEXEC;
const DEFAULT_TIMEOUT_MS = 1000;
const SLEEPER = new Int32Array(new SharedArrayBuffer(4));

/** Sleep synchronously; the caller holds stopped threads and must not yield to the event loop. */
export function sleepSync(ms: number): void {
  Atomics.wait(SLEEPER, 0, 0, ms);
}

/** Back-off for polling waits: spin briefly (stops usually arrive in microseconds), then sleep up to 1 ms. */
export function backoff(round: number): void {
  if (round < 20) return;
  sleepSync(Math.min(1, 0.02 * 2 ** Math.min(6, (round - 20) / 4)));
}

function nowMs(): number {
  return performance.now();
}

/** The tids in `/proc/PID/task`, or `ESRCH` when the process does not exist. */
export function listTids(pid: number): number[] {
  try {
    return readdirSync(`/proc/${pid}/task`).map(Number);
  } catch (err) {
    throw new XspliceError("ESRCH", `no process ${pid}`, { pid }, { cause: err });
  }
}

/** A thread's state letter from `/proc/PID/task/TID/stat` (`R`, `S`, `t`, `Z`...), or `X` when gone. */
export function threadStateLetter(pid: number, tid: number): string {
  try {
    const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, "latin1");
    // The comm field may hold spaces and parentheses: the state follows the last ')'.
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) || "X";
  } catch {
    return "X";
  }
}

function commOf(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/comm`, "utf8").trim();
  } catch {
    return "?";
  }
}

function tracerPidOfThread(pid: number, tid: number): number {
  try {
    const m = /^TracerPid:\s*(\d+)$/m.exec(readFileSync(`/proc/${pid}/task/${tid}/status`, "utf8"));
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}

/**
 * One process under ptrace. Created stopped by `Tracee.seize`; `resume()`
 * lets it run while staying attached, `quiesce()` stops it again, `detach()`
 * lets it go. A Tracee is single-owner state: do not share one between callers.
 */
/** How long a Tracee kept its process stopped: number of stops, their sum and the longest, in ms. */
export interface StopLedger {
  stops: number;
  totalMs: number;
  longestMs: number;
}

export class Tracee {
  /** The process (thread-group) id. */
  readonly pid: number;
  /**
   * The process's memory, through a descriptor opened *before* the seize: it
   * can only ever reach the program the seize held (after an `execve` every
   * access through it fails, see `memory.ts`). Closed by `detach()`.
   */
  readonly memory: ProcessMemory;
  private readonly state = new Map<number, ThreadState>();
  private attached = true;
  /** Set when a thread reported `PTRACE_EVENT_EXEC` after the seize: the program we held is gone. */
  private execSeen = false;
  /** State other modules keep for this hold (the inject page's view), dropped at detach. */
  private readonly held = new Map<string, unknown>();
  /** When the current stop began (ms, `performance.now()`), or undefined while running. */
  private stopBegan: number | undefined;
  /** How this tracer raises itself while the process is stopped, and the undo of the current raise. */
  private readonly boost: StopBoost;
  private unboost: (() => void) | undefined;
  private ledger: StopLedger = { stops: 0, totalMs: 0, longestMs: 0 };

  private constructor(pid: number, boost: StopBoost) {
    this.pid = pid;
    this.boost = boost;
    this.memory = new ProcessMemory(pid, { tid: () => this.anyStoppedThread() });
  }

  private anyStoppedThread(): number | undefined {
    if (this.execSeen || !this.attached) return undefined;
    for (const th of this.state.values()) if (!th.running) return th.tid;
    return undefined;
  }

  /**
   * Seize every thread of `pid` and (unless `stop: false`) stop it. New threads created meanwhile
   * are caught by `PTRACE_O_TRACECLONE` and by re-reading `/proc/PID/task`
   * until it is stable; threads that exit meanwhile are dropped.
   * Errors: `ESRCH` (no such process), `EPERM` (not permitted), `EBUSY`
   * (already traced by another process, or not stopped within `timeoutMs`).
   */
  static seize(pid: number, opts: SeizeOptions = {}): Tracee {
    if (!Number.isSafeInteger(pid) || pid <= 0) throw new XspliceError("ESRCH", `no process ${pid}`, { pid });
    checkHost();
    const stop = opts.stop !== false;
    const deadline = nowMs() + (opts.timeoutMs ?? DEFAULT_TIMEOUT_MS);
    const t = new Tracee(pid, opts.boost ?? DEFAULT_BOOST);
    if (stop) t.beginStop();
    try {
      for (let round = 0; ; round++) {
        const fresh = listTids(pid).filter((tid) => !t.state.has(tid));
        if (fresh.length === 0 && round > 0) break;
        for (const tid of fresh) t.attachThread(tid, stop);
        if (stop) t.waitAllStopped(deadline);
        else t.poll();
        if (t.state.size === 0)
          throw new XspliceError("ESRCH", `process ${pid} exited while being seized`, { pid });
      }
      t.checkSameProgram();
    } catch (err) {
      t.abandon();
      throw err;
    }
    return t;
  }

  /**
   * Seize one thread and, with `stop`, ask it to stop; a thread that is gone
   * already is skipped. Without `stop` it keeps running, traced: its signals
   * and clones stop it until `poll()` (or a quiesce) passes them on.
   */
  private attachThread(tid: number, stop: boolean): void {
    try {
      ptraceSeize(tid, SEIZE_OPTIONS);
    } catch (err) {
      if (!(err instanceof XspliceError)) throw err;
      if (err.errno === "ESRCH") return; // exited between the listing and the seize
      if (err.errno !== "EPERM") throw err;
      const tracer = tracerPidOfThread(this.pid, tid);
      // Auto-attached through PTRACE_O_TRACECLONE before we saw its clone event: it is ours already.
      // (Only once some thread is ours: a process held by another Tracee of this process is EBUSY.)
      if (tracer !== 0 && tracer === getpid() && this.state.size > 0) {
        if (!this.state.has(tid)) this.state.set(tid, { tid, running: true, stop: "interrupt" });
        if (stop) this.interrupt(tid);
        return;
      }
      if (tracer !== 0) {
        throw new XspliceError(
          "EBUSY",
          `cannot seize process ${this.pid}: already traced by PID ${tracer} (${commOf(tracer)})`,
          { pid: this.pid, tid },
        );
      }
      if ("ZX".includes(threadStateLetter(this.pid, tid))) return; // exiting: a zombie cannot be traced
      throw new XspliceError(
        "EPERM",
        `not permitted to trace process ${this.pid} (tid ${tid}): run as root, or as its owner with kernel.yama.ptrace_scope <= 1 (or with CAP_SYS_PTRACE)`,
        { pid: this.pid, tid },
      );
    }
    this.state.set(tid, { tid, running: true, stop: "interrupt" });
    if (stop) this.interrupt(tid);
  }

  private interrupt(tid: number): void {
    try {
      ptraceInterrupt(tid);
    } catch (err) {
      // ESRCH: the thread is exiting; the wait reports its exit.
      if (!(err instanceof XspliceError) || err.errno !== "ESRCH") throw err;
    }
  }

  private cont(tid: number, sig: number): void {
    try {
      ptraceCont(tid, sig);
    } catch (err) {
      // ESRCH: killed while stopped (SIGKILL wakes traced threads); the wait reports its exit.
      if (!(err instanceof XspliceError) || err.errno !== "ESRCH") throw err;
    }
  }

  /**
   * Handle one wait report while stopping. Returns true once the thread sits
   * in an interrupt- or group-stop with no trap left pending; every other stop
   * is passed on (a signal is delivered, never swallowed) and the thread
   * interrupted again. Re-interrupting after each pass-through matters: any
   * trap clears a pending `PTRACE_INTERRUPT`, and one that arrived while the
   * thread sat in another stop would fire after `resume()` and leave the
   * thread stopped with nobody waiting for it.
   */
  private onStopping(st: WaitStatus): boolean {
    const tid = st.tid;
    if (st.kind === "none") return false;
    if (st.kind === "exited" || st.kind === "signaled") {
      this.state.delete(tid);
      return true;
    }
    const th = this.state.get(tid);
    if (!th) return true;
    switch (st.stop) {
      case "interrupt":
      case "group":
        th.running = false;
        th.stop = st.stop;
        return true;
      case "signal-delivery":
        this.cont(tid, st.sig);
        this.interrupt(tid);
        return false;
      case "event":
        this.onEvent(tid, st.event);
        this.cont(tid, 0);
        this.interrupt(tid);
        return false;
    }
  }

  /** Bookkeeping for `PTRACE_EVENT_*` stops. */
  private onEvent(tid: number, event: number): void {
    if (event === PTRACE_EVENT.CLONE) {
      // The new thread is auto-attached and starts in a PTRACE_EVENT_STOP of its own.
      const child = Number(ptraceGetEventMsg(tid));
      if (!this.state.has(child)) this.state.set(child, { tid: child, running: true, stop: "interrupt" });
    } else if (event === PTRACE_EVENT.EXEC) {
      // execve leaves one thread, now with tid == pid; the others are gone without an exit report.
      // Whatever this run computed or wrote belonged to the old program: note it, so that every
      // later step refuses (SPEC §8) instead of writing into the new one.
      this.execSeen = true;
      for (const other of [...this.state.keys()]) if (other !== this.pid) this.state.delete(other);
      if (!this.state.has(this.pid))
        this.state.set(this.pid, { tid: this.pid, running: true, stop: "interrupt" });
    }
  }

  /**
   * State a module keeps for as long as this process is held, made by `make`
   * on first use (e.g. `remote-call.ts`'s view of the inject page): explicit,
   * bounded by the hold, gone at `detach()`.
   */
  heldState<T>(key: string, make: () => T): T {
    if (!this.held.has(key)) this.held.set(key, make());
    return this.held.get(key) as T;
  }

  /** Forget what `heldState` kept under `key` (it no longer describes the process). */
  dropHeldState(key: string): void {
    this.held.delete(key);
  }

  /** True once the process has executed a new program since the seize. */
  get execed(): boolean {
    return this.execSeen;
  }

  /**
   * Throw `ESRCH` when the process executed a new program since the seize:
   * the payloads, registry and code this run worked on are gone with the old
   * image, and nothing may be written into the new one (SPEC §8).
   */
  checkSameProgram(): void {
    if (this.execSeen)
      throw new XspliceError(
        "ESRCH",
        `process ${this.pid} executed a new program (execve) while xsplice held it: the operation is abandoned and nothing is written into the new program`,
        { pid: this.pid },
      );
  }

  /**
   * One non-blocking wait on `tid`. A thread that is no longer ours to wait for
   * (ECHILD: gone, reaped with its process) is forgotten and gives undefined.
   *
   * A thread other than the leader that calls execve takes the leader's tid
   * (ptrace(2), "execve(2) under ptrace"): its own tid vanishes without a
   * report, and the exec event comes from the leader's — which may have been
   * dropped meanwhile as a zombie. So when such a tid vanishes the leader is
   * waited for again: otherwise nobody takes the exec event, the detach
   * forgets a thread the kernel still has attached, and the new program stays
   * stopped, held, until this tracer exits (issue #11 item 1).
   */
  private waitNoHang(tid: number): WaitStatus | undefined {
    try {
      return waitTid(tid, WAIT.WNOHANG);
    } catch (err) {
      if (err instanceof XspliceError && err.errno === "ECHILD") {
        this.state.delete(tid);
        if (tid !== this.pid && !this.state.has(this.pid) && existsSync(`/proc/${this.pid}/task/${this.pid}`))
          this.state.set(this.pid, { tid: this.pid, running: true, stop: "interrupt" });
        return undefined;
      }
      throw err;
    }
  }

  /**
   * Reap and forget the threads that are dead (zombie), also those we saw
   * stop before they died: an execve kills every other thread, stopped or not,
   * and waits until their tracer has reaped them (issue #11 item 1). A zombie
   * that cannot be reaped yet (a leader whose group lives on) is forgotten.
   */
  private reapDead(): void {
    for (const th of [...this.state.values()]) {
      if (!"ZX".includes(threadStateLetter(this.pid, th.tid))) continue;
      const st = this.waitNoHang(th.tid);
      if (st !== undefined && (st.kind === "exited" || st.kind === "signaled")) this.onStopping(st);
      else if (st !== undefined && st.kind === "stopped") {
        // A stop reported before its death: the exit report follows; take it now.
        const again = this.waitNoHang(th.tid);
        if (again !== undefined && again.kind !== "none") this.onStopping(again);
        this.state.delete(th.tid);
      } else this.state.delete(th.tid);
    }
  }

  /** Wait until every thread marked running has reached a stop, or throw `EBUSY` at the deadline. */
  private waitAllStopped(deadline: number): void {
    let lastProgress = nowMs();
    for (let round = 0; ; round++) {
      let pending = 0;
      let progress = false;
      for (const th of [...this.state.values()]) {
        if (!th.running) continue;
        const st = this.waitNoHang(th.tid);
        if (st === undefined) {
          progress = true;
          continue;
        }
        if (st.kind !== "none") progress = true;
        if (!this.onStopping(st)) pending++;
      }
      // A thread may have been added meanwhile (a clone, or the leader after an exec elsewhere).
      if (pending === 0 && !this.someRunning()) return;
      const now = nowMs();
      if (progress) {
        lastProgress = now;
        round = 0;
        continue;
      }
      // A zombie thread (e.g. a leader that called pthread_exit) never stops: drop it. But reap it
      // first when it can be (it may have died since the waits above): a thread killed by another
      // thread's execve must be reaped by its tracer, or that execve waits for ever (issue #11 item 1).
      if (now - lastProgress > 5) {
        this.reapDead();
        lastProgress = now;
      }
      if (now > deadline) {
        const late = [...this.state.values()].filter((th) => th.running).map((th) => th.tid);
        throw new XspliceError(
          "EBUSY",
          `process ${this.pid}: thread(s) ${late.join(", ")} did not stop within the timeout`,
          { pid: this.pid, tid: late[0] },
        );
      }
      backoff(round);
    }
  }

  /** The tids of the traced threads, ascending. */
  get threads(): number[] {
    return [...this.state.keys()].sort((a, b) => a - b);
  }

  private someRunning(): boolean {
    for (const th of this.state.values()) if (th.running) return true;
    return false;
  }

  /** True when every traced thread sits in a ptrace-stop. */
  get stopped(): boolean {
    for (const th of this.state.values()) if (th.running) return false;
    return true;
  }

  /** True until `detach()`. */
  get isAttached(): boolean {
    return this.attached;
  }

  private stoppedThread(tid: number): ThreadState {
    if (!this.attached) throw new XspliceError("ESRCH", `process ${this.pid} is no longer attached`, { tid });
    this.checkSameProgram();
    const th = this.state.get(tid);
    if (!th)
      throw new XspliceError("ESRCH", `thread ${tid} is not a traced thread of process ${this.pid}`, { tid });
    if (th.running) throw new XspliceError("EINVAL", `thread ${tid} is running; quiesce first`, { tid });
    return th;
  }

  /** Registers of a stopped thread. */
  regs(tid: number): Regs {
    this.stoppedThread(tid);
    return ptraceGetRegs(tid);
  }

  /**
   * Registers of a stopped thread as the raw `user_regs_struct` in `buf` (reused by the
   * caller; read fields at `REG_OFFSET`, or `decodeRegs(buf)` for all of them).
   */
  regsInto(tid: number, buf: Buffer): void {
    this.stoppedThread(tid);
    ptraceGetRegsInto(tid, buf);
  }

  /** Set the registers of a stopped thread. */
  setRegs(tid: number, regs: Regs): void {
    this.stoppedThread(tid);
    ptraceSetRegs(tid, regs);
  }

  /**
   * Stop every thread again after `resume()`. Threads created while running
   * were auto-attached; their clone events are processed here.
   */
  quiesce(opts: StopOptions = {}): void {
    if (!this.attached)
      throw new XspliceError("ESRCH", `process ${this.pid} is no longer attached`, { pid: this.pid });
    const deadline = nowMs() + (opts.timeoutMs ?? DEFAULT_TIMEOUT_MS);
    this.beginStop();
    for (const th of this.state.values()) if (th.running) this.interrupt(th.tid);
    this.waitAllStopped(deadline);
    if (this.state.size === 0)
      throw new XspliceError("ESRCH", `process ${this.pid} has exited`, { pid: this.pid });
    this.checkSameProgram();
  }

  /**
   * Let every thread run again, still attached. A thread in group-stop (the
   * process was SIGSTOPped by someone) gets `PTRACE_LISTEN` instead, so it stays
   * stopped as it would be without us. A thread whose last stop was an
   * injected trap (remote call) is continued with signal 0: that trap is ours.
   *
   * While resumed and attached, a thread that receives a signal or creates a
   * thread stops until the tracer next waits (`poll`, `quiesce`, `detach`);
   * keep resumed attachments short or call `poll()`.
   */
  resume(): void {
    if (!this.attached)
      throw new XspliceError("ESRCH", `process ${this.pid} is no longer attached`, { pid: this.pid });
    for (const th of this.state.values()) {
      if (th.running) continue;
      if (th.stop === "group") {
        try {
          ptraceListen(th.tid);
        } catch (err) {
          if (!(err instanceof XspliceError) || err.errno !== "ESRCH") throw err;
        }
      } else this.cont(th.tid, 0);
      th.running = true;
    }
    this.endStop();
  }

  /** Open a stop in the ledger (no-op while one is open), raising this tracer for its span. */
  private beginStop(): void {
    if (this.stopBegan !== undefined) return;
    this.stopBegan = nowMs();
    this.unboost = boostThread(this.boost);
  }

  /**
   * Close the current stop in the ledger: threads run again (resumed or
   * detached). The time is taken before the tracer drops its boost: from then
   * on the threads run, and the tracer may wait for a CPU before it gets on.
   */
  private endStop(): void {
    const end = nowMs();
    this.unboost?.();
    this.unboost = undefined;
    if (this.stopBegan === undefined) return;
    const ms = end - this.stopBegan;
    this.stopBegan = undefined;
    this.ledger = {
      stops: this.ledger.stops + 1,
      totalMs: this.ledger.totalMs + ms,
      longestMs: Math.max(this.ledger.longestMs, ms),
    };
  }

  /**
   * Every stop of the process this Tracee made so far (seize, quiesce, the
   * stop that detaching needs), from the first interrupt to the last thread
   * running again: what the target saw, as opposed to one operation's window.
   */
  get stops(): StopLedger {
    return this.ledger;
  }

  /**
   * Service stops of a resumed process without stopping it: deliver signals,
   * adopt new threads, let group-stops stand. Returns the number of reports handled.
   */
  poll(): number {
    let handled = 0;
    for (const th of [...this.state.values()]) {
      if (!th.running) continue;
      const st = this.waitNoHang(th.tid);
      if (st === undefined || st.kind === "none") continue;
      handled++;
      if (st.kind !== "stopped") {
        this.state.delete(th.tid);
        continue;
      }
      if (st.stop === "group") ptraceListen(th.tid);
      else if (st.stop === "event") {
        this.onEvent(th.tid, st.event);
        this.cont(th.tid, 0);
      } else this.cont(th.tid, st.stop === "signal-delivery" ? st.sig : 0);
    }
    return handled;
  }

  /**
   * Continue one stopped thread (`PTRACE_CONT`, delivering `sig` when non-zero)
   * while the others stay stopped: for code xsplice runs in it (remote calls).
   * `waitStop` or `interruptThread` takes it back.
   */
  continueThread(tid: number, sig = 0): void {
    const th = this.stoppedThread(tid);
    this.cont(tid, sig);
    th.running = true;
  }

  /**
   * Wait for thread `tid`, which the caller continued, to reach a stop that
   * `opts.take` accepts; other stops are passed over (continued, their signal
   * not delivered), clone events adopt the new thread. Returns the stop (the
   * thread stopped), `"idle"` when `opts.idle` said so, or `"deadline"` (both
   * with the thread still running). The thread ending is `ESRCH` (it is
   * forgotten), and so is an exec (`checkSameProgram`).
   */
  waitStop(tid: number, opts: WaitStopOptions): ThreadStop | "idle" | "deadline" {
    const th = this.state.get(tid);
    if (!th)
      throw new XspliceError("ESRCH", `thread ${tid} is not a traced thread of process ${this.pid}`, { tid });
    for (let round = 0; ; round++) {
      const st = this.waitNoHang(tid);
      if (st === undefined || st.kind === "exited" || st.kind === "signaled") {
        this.state.delete(tid);
        throw new XspliceError(
          "ESRCH",
          `thread ${tid} of process ${this.pid} ended while xsplice ran code in it`,
          {
            pid: this.pid,
            tid,
          },
        );
      }
      if (st.kind === "stopped") {
        round = 0;
        if (st.stop === "event") {
          this.onEvent(tid, st.event);
          if (st.event === PTRACE_EVENT.EXEC) {
            // It sits in its exec event stop, reported once: mark it stopped, or detach would wait
            // for a report that never comes and leave the new program stopped, held (issue #11 item 1).
            const leader = this.state.get(this.pid);
            if (leader) {
              leader.running = false;
              leader.stop = "event";
            }
          }
          this.checkSameProgram();
          if (st.event === PTRACE_EVENT.CLONE) {
            this.cont(tid, 0);
            continue;
          }
        }
        if (opts.take(st)) {
          th.running = false;
          th.stop = st.stop;
          return st;
        }
        this.cont(tid, 0);
        continue;
      }
      if (opts.idle?.()) return "idle";
      if (nowMs() > opts.deadline) return "deadline";
      backoff(round);
    }
  }

  /**
   * Stop one running thread (`PTRACE_INTERRUPT`) and wait for its interrupt-
   * or group-stop. A stop that comes first (a fault of code xsplice ran in
   * it) is passed over without its signal and the thread interrupted again:
   * any trap clears a pending interrupt. Past `deadline`: `EBUSY`.
   */
  interruptThread(tid: number, deadline: number): void {
    for (;;) {
      this.interrupt(tid);
      const st = this.waitStop(tid, { deadline, take: () => true });
      if (st === "idle" || st === "deadline")
        throw new XspliceError("EBUSY", `thread ${tid} of process ${this.pid} does not stop`, {
          pid: this.pid,
          tid,
        });
      if (st.stop === "interrupt" || st.stop === "group") return;
      this.cont(tid, 0);
      const th = this.state.get(tid);
      if (th) th.running = true;
    }
  }

  /**
   * Let every thread go, running as before the seize. A process that was in
   * group-stop (SIGSTOPped by someone else) stays stopped: the kernel
   * re-enters the group-stop on detach. Threads must be in a ptrace-stop to be
   * detached, so a resumed process is quiesced first.
   */
  detach(opts: StopOptions = {}): void {
    if (!this.attached) return;
    let failure: unknown;
    if (!this.stopped) {
      try {
        this.quiesce(opts);
      } catch (err) {
        failure = err;
      }
    }
    this.reapDead();
    for (const th of this.state.values()) {
      if (th.running) continue;
      try {
        ptraceDetach(th.tid, 0);
      } catch (err) {
        if (!(err instanceof XspliceError) || err.errno !== "ESRCH") failure ??= err;
      }
    }
    this.releaseStragglers(nowMs() + (opts.timeoutMs ?? DEFAULT_TIMEOUT_MS));
    this.attached = false;
    this.state.clear();
    this.held.clear();
    this.memory.close();
    this.endStop();
    if (failure && !(failure instanceof XspliceError && failure.errno === "ESRCH")) throw failure;
  }

  /**
   * Let go of every thread of the process the kernel still has attached to
   * this tracer, whatever this Tracee's bookkeeping says: a thread that was
   * inside an execve while the process was stopped (it cannot stop there)
   * reports its exec event later, and a tracer that forgot it would keep the
   * new program stopped, held, until it exits (issue #11 item 1). Each such
   * thread is waited for until `deadline` and detached from its stop.
   */
  private releaseStragglers(deadline: number): void {
    const self = getpid();
    for (let round = 0; ; round++) {
      let tids: number[];
      try {
        tids = listTids(this.pid).filter((tid) => tracerPidOfThread(this.pid, tid) === self);
      } catch {
        return; // the process is gone
      }
      if (tids.length === 0 || nowMs() > deadline) return;
      for (const tid of tids) {
        let st: WaitStatus;
        try {
          st = waitTid(tid, WAIT.WNOHANG);
        } catch {
          continue; // ECHILD: not ours to wait for after all
        }
        // A stop whose report was taken already still shows as a tracing stop ('t'): detachable.
        if (st.kind === "none" && threadStateLetter(this.pid, tid) !== "t") continue;
        if (st.kind === "exited" || st.kind === "signaled") continue;
        if (st.kind === "stopped" && st.stop === "event" && st.event === PTRACE_EVENT.EXEC)
          this.execSeen = true;
        try {
          ptraceDetach(tid, 0);
        } catch {
          // gone meanwhile
        }
      }
      backoff(round);
    }
  }

  /** Best-effort release after a failed seize: detach what stopped; the rest is released when we exit. */
  private abandon(): void {
    try {
      this.detach({ timeoutMs: 100 });
    } catch {
      // Already failing; the original error is the one to report.
    }
  }

  /** A description of a stop for error messages: `SIGSEGV at 0x401136`. */
  static describeSignal(sig: number, pc: bigint): string {
    return `${signalName(sig)} at 0x${pc.toString(16)}`;
  }
}

/**
 * Seize and stop `pid`, run `fn` with every thread stopped, then resume and
 * detach, also when `fn` throws.
 */
export function withStoppedProcess<T>(pid: number, opts: StopOptions, fn: (tracee: Tracee) => T): T {
  const tracee = Tracee.seize(pid, opts);
  try {
    return fn(tracee);
  } finally {
    tracee.detach(opts);
  }
}
