/**
 * The agent's counters and their Prometheus text exposition (format 0.0.4):
 * payloads known, processes patched, failures, and a histogram of how long
 * bringing one process up to date took (load/apply/replace, including the
 * worker's hold of the process).
 */

/** Upper bounds of the latency histogram, in seconds. */
export const LATENCY_BUCKETS = [0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5] as const;

/** The agent's metrics. */
export class AgentMetrics {
  payloads = 0;
  rejected = 0;
  processesPatched = 0;
  failures = 0;
  actions = 0;
  parked = 0;
  /** Of the parked starts: seconds from the gate's exec event to parked at the entry, summed. */
  parkSeconds = 0;
  /** Of the parked starts: seconds from parked to the release sent (converging it), summed. */
  holdSeconds = 0;
  /** Scans of every process, and the seconds they spent reading maps and registries (not converging). */
  scans = 0;
  scanSeconds = 0;
  private readonly counts = LATENCY_BUCKETS.map(() => 0);
  private sum = 0;
  private n = 0;

  /** Record one process's convergence time, in ms. */
  observeApply(ms: number): void {
    const s = ms / 1000;
    LATENCY_BUCKETS.forEach((b, i) => {
      if (s <= b) this.counts[i]!++;
    });
    this.sum += s;
    this.n++;
  }

  /** The exposition text. */
  text(): string {
    const lines = [
      "# HELP xsplice_payloads Payload files in the agent's directory that passed the policy.",
      "# TYPE xsplice_payloads gauge",
      `xsplice_payloads ${this.payloads}`,
      "# HELP xsplice_payloads_rejected Payload files refused (policy, malformed).",
      "# TYPE xsplice_payloads_rejected gauge",
      `xsplice_payloads_rejected ${this.rejected}`,
      "# HELP xsplice_processes_patched Processes with every payload meant for them applied.",
      "# TYPE xsplice_processes_patched gauge",
      `xsplice_processes_patched ${this.processesPatched}`,
      "# HELP xsplice_failures_total Failed actions.",
      "# TYPE xsplice_failures_total counter",
      `xsplice_failures_total ${this.failures}`,
      "# HELP xsplice_actions_total Actions taken (load, apply, replace, revert, unload).",
      "# TYPE xsplice_actions_total counter",
      `xsplice_actions_total ${this.actions}`,
      "# HELP xsplice_started_parked_total New processes held at their entry point and patched before main.",
      "# TYPE xsplice_started_parked_total counter",
      `xsplice_started_parked_total ${this.parked}`,
      "# HELP xsplice_start_park_seconds_total Time new processes took from the exec gate's event to parked at their entry.",
      "# TYPE xsplice_start_park_seconds_total counter",
      `xsplice_start_park_seconds_total ${this.parkSeconds}`,
      "# HELP xsplice_start_hold_seconds_total Time new processes were held parked while the agent converged them.",
      "# TYPE xsplice_start_hold_seconds_total counter",
      `xsplice_start_hold_seconds_total ${this.holdSeconds}`,
      "# HELP xsplice_scans_total Scans of every process on the host.",
      "# TYPE xsplice_scans_total counter",
      `xsplice_scans_total ${this.scans}`,
      "# HELP xsplice_scan_seconds_total Time scans spent reading processes' maps and registries (convergence not included).",
      "# TYPE xsplice_scan_seconds_total counter",
      `xsplice_scan_seconds_total ${this.scanSeconds}`,
      "# HELP xsplice_apply_seconds Time to bring one process up to date.",
      "# TYPE xsplice_apply_seconds histogram",
      ...LATENCY_BUCKETS.map((b, i) => `xsplice_apply_seconds_bucket{le="${b}"} ${this.counts[i]}`),
      `xsplice_apply_seconds_bucket{le="+Inf"} ${this.n}`,
      `xsplice_apply_seconds_sum ${this.sum}`,
      `xsplice_apply_seconds_count ${this.n}`,
    ];
    return `${lines.join("\n")}\n`;
  }
}
