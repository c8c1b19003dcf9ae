/**
 * A run of numbered claims checked one by one, as the demo and the examples
 * present themselves: a heading per step, a verdict per claim, the steps an
 * earlier failure left out recorded as skipped, the processes a run started
 * stopped whatever happens (an error, SIGINT/SIGTERM/SIGHUP), and the exit
 * status saying whether every claim held.
 */
import { relative } from "node:path";

/** One numbered step: what the run claims, what it saw, and whether they agree. */
export interface StepResult {
  step: number;
  title: string;
  claim: string;
  ok: boolean;
  observed: string;
  /** Set when an earlier step failed and this one could not run. */
  skipped?: boolean;
  data: Record<string, unknown>;
}

/** How a whole run ended, for its report. */
export interface StepsOutcome {
  ok: boolean;
  elapsedMs: number;
  error?: string;
}

/** A path as a person reads it: relative to the working directory when inside it. */
export function shown(path: string): string {
  const rel = relative(process.cwd(), path);
  return rel.startsWith("..") ? path : rel;
}

/** The steps of one run; methods are bound, so `const { say } = steps` works. */
export class Steps {
  readonly results: StepResult[] = [];
  /** The step in progress, so that an unexpected error is charged to it. */
  private current = 0;
  private readonly started = performance.now();

  /**
   * `claims[i]` and `titles[i]` describe step i + 1; `json`: print nothing but
   * the caller's document; `name`: what the messages call the run ("demo").
   */
  constructor(
    readonly claims: readonly string[],
    readonly titles: readonly string[],
    readonly json: boolean,
    readonly name: string,
  ) {}

  /** Text output for people; silent with --json (stdout then holds only the document). */
  readonly say = (line = ""): void => {
    if (!this.json) process.stdout.write(`${line}\n`);
  };

  readonly heading = (step: number, title: string): void => {
    this.current = step;
    this.say();
    this.say(`[${step}/${this.claims.length}] ${title}`);
  };

  /** Record a step's outcome and print its verdict. */
  readonly record = (r: {
    step: number;
    ok: boolean;
    observed: string;
    data?: Record<string, unknown>;
  }): boolean => {
    const claim = this.claims[r.step - 1]!;
    this.results.push({ ...r, title: this.titles[r.step - 1]!, claim, data: r.data ?? {} });
    this.say(`      ${r.ok ? "✓" : "✗"} ${r.ok ? claim : `expected: ${claim}; observed: ${r.observed}`}`);
    return r.ok;
  };

  /** Show an xsplice command line as run (paths shortened, arguments with spaces quoted). */
  readonly showCommand = (args: readonly string[]): void => {
    const shownArgs = args.map((a) => (a.startsWith("/") ? shown(a) : a.includes(" ") ? `"${a}"` : a));
    this.say(`      $ xsplice ${shownArgs.join(" ")}`);
  };

  /**
   * Run `run`, then `cleanup` whatever happened (also on SIGINT, SIGTERM and
   * SIGHUP, which then exit 130 without a report); then `report` the outcome
   * and set the exit status: 0 only when every step ran and held.
   */
  async main(
    run: () => Promise<void>,
    cleanup: () => Promise<void>,
    report: (outcome: StepsOutcome) => void,
  ): Promise<void> {
    let interrupted = false;
    for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
      process.on(sig, () => {
        if (interrupted) return;
        interrupted = true;
        this.say(`\n${sig}: stopping every process the ${this.name} started`);
        void cleanup().then(() => process.exit(130));
      });
    }
    let error: string | undefined;
    try {
      await run();
    } catch (err) {
      error = err instanceof Error ? err.message : String(err);
      if (this.current > this.results.length) this.record({ step: this.current, ok: false, observed: error });
    } finally {
      await cleanup();
    }
    if (interrupted) return;
    for (let s = this.results.length + 1; s <= this.claims.length; s++) {
      this.results.push({
        step: s,
        title: this.titles[s - 1]!,
        claim: this.claims[s - 1]!,
        ok: false,
        skipped: true,
        observed: "not run: an earlier step failed",
        data: {},
      });
    }
    const ok = error === undefined && this.results.every((r) => r.ok);
    report({
      ok,
      elapsedMs: Math.round(performance.now() - this.started),
      ...(error === undefined ? {} : { error }),
    });
    process.exitCode = ok ? 0 : 1;
  }
}
