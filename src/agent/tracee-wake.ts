/**
 * Run a poll of the gate's tracees when one of them may have stopped, instead
 * of spinning on `waitpid(WNOHANG)` from `setImmediate`.
 *
 * Why: the gates drive parking from the event loop (they must keep answering
 * fanotify events meanwhile, `gate.ts`), and a `setImmediate` loop keeps one
 * of the two cores busy for the whole park, competing with the very process
 * being parked (its dynamic linker runs between the exec stop and the entry
 * stop). Every ptrace stop of a tracee sends its tracer `SIGCHLD`, so a
 * signal-driven poll wakes exactly when there is something to read. Signals
 * coalesce, which is harmless: a poll reads every tracee until none has news.
 * A slow timer backs it up while anything is being parked (a stop reported
 * between a poll's last `waitpid` and its return still sends its own
 * `SIGCHLD`, so the timer is belt and braces, not the mechanism).
 */

/** The timer that backs the signal up, in ms. */
const FALLBACK_MS = 20;

/** Schedules `poll` (which returns whether anything is still pending) on `SIGCHLD`. */
export class TraceeWake {
  private queued = false;
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly poll: () => boolean) {
    process.on("SIGCHLD", () => this.schedule());
  }

  /** Poll soon (once, however often asked before it runs). */
  schedule(): void {
    if (this.queued) return;
    this.queued = true;
    setImmediate(() => {
      this.queued = false;
      const pending = this.poll();
      if (pending && !this.timer)
        this.timer = setTimeout(() => {
          this.timer = undefined;
          this.schedule();
        }, FALLBACK_MS);
      else if (!pending && this.timer) {
        clearTimeout(this.timer);
        this.timer = undefined;
      }
    });
  }
}
