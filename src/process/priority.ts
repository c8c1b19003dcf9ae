/**
 * Winning the CPU while the target is stopped (issue #13 item 4). On a busy
 * host the stop window is mostly scheduling latency: the tracer, once it has
 * sent its interrupts, waits in a queue behind other work before it gets to
 * notice the stops, check and write, and resume. For the few milliseconds it
 * holds every thread of the target, xsplice (running as root) raises its own
 * thread's priority and drops it again when the threads run: the target is
 * not touched. Measured in `bench/stop-under-load.bench.ts`.
 *
 * - `"fifo"`: `SCHED_FIFO` priority 1, the lowest real-time priority: the tracer
 *   preempts every normal thread when it is runnable, and gives the CPU back
 *   whenever it waits (its polls back off into sleeps within ~20 µs).
 * - `"nice"`: nice −20 under the normal scheduler: a larger share, no preemption.
 * - `"none"`: as started.
 * Without the privilege (not root, no CAP_SYS_NICE) the boost silently stays off.
 */
import { niceGet, niceSet, SCHED, schedGet, schedSet } from "./libc.ts";

/** How the tracer raises itself for the span of a stop. */
export type StopBoost = "none" | "nice" | "fifo";

/** The default: what `bench/stop-under-load.bench.ts` shows shortening the pause on a loaded host. */
export const DEFAULT_BOOST: StopBoost = "fifo";

/**
 * Raise the calling thread as `mode` says; returns the function that puts it
 * back as it was (a no-op when nothing was changed).
 */
export function boostThread(mode: StopBoost): () => void {
  if (mode === "none") return () => {};
  try {
    if (mode === "fifo") {
      const was = schedGet();
      if (was.policy === SCHED.FIFO || was.policy === SCHED.RR) return () => {};
      schedSet(SCHED.FIFO, 1);
      return () => {
        try {
          schedSet(was.policy, was.priority);
        } catch {
          // Nothing sensible to do: the next stop tries again.
        }
      };
    }
    const was = niceGet();
    if (was <= -20) return () => {};
    niceSet(-20);
    return () => {
      try {
        niceSet(was);
      } catch {
        // see above
      }
    };
  } catch {
    // EPERM (no CAP_SYS_NICE) or an unsupported policy: stay as we are.
    return () => {};
  }
}
