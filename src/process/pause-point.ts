/**
 * A test hook for the crash tests (issue #11, SPEC §8): named points in the
 * journaled phases of every operation where a test can make xsplice stop and
 * wait, so that it is SIGKILLed exactly there rather than at a random instant.
 *
 * Inert unless `XSPLICE_TEST_PAUSE_AT` is set: then `pausePoint(name)` counts
 * the point and, when it is wanted, writes `xsplice-pause NAME N` (N: the
 * points passed so far, this one included) to stderr and blocks reading one
 * byte from stdin — the test kills it there, or writes a byte to let it go on
 * (end of input lets it go on too). The variable is a comma-separated list of
 * point names (`action:write`), name prefixes ending in `*` (`upload:*`, `*`
 * for every point), or `@N` (the N-th point passed, whatever its name: a sweep
 * over N reaches every point an operation passes, in order).
 *
 * Every point is a place where xsplice itself does nothing that a kill there
 * would not also interrupt: pausing adds no state of its own, it only widens
 * the instant. The points are named `<operation>:<phase>` and listed in
 * `docs/safety-model.md`.
 */
import { readSync, writeSync } from "node:fs";

/** The variable a test sets to pause at points. */
export const PAUSE_ENV = "XSPLICE_TEST_PAUSE_AT";

let passed = 0;

/** Start counting `@N` points from zero again (a test child running one operation after another). */
export function resetPausePoints(): void {
  passed = 0;
}

function wanted(spec: string, name: string, n: number): boolean {
  for (const raw of spec.split(",")) {
    const e = raw.trim();
    if (e === "") continue;
    if (e.startsWith("@")) {
      if (Number(e.slice(1)) === n) return true;
    } else if (e.endsWith("*")) {
      if (name.startsWith(e.slice(0, -1))) return true;
    } else if (e === name) return true;
  }
  return false;
}

/**
 * A named phase of an operation. Does nothing unless `XSPLICE_TEST_PAUSE_AT`
 * asks for it (see the module comment); then reports it on stderr and waits
 * for a byte on stdin.
 */
export function pausePoint(name: string): void {
  const spec = process.env[PAUSE_ENV];
  if (spec === undefined || spec === "") return;
  passed++;
  if (!wanted(spec, name, passed)) return;
  writeSync(2, `xsplice-pause ${name} ${passed}\n`);
  try {
    readSync(0, Buffer.alloc(1));
  } catch {
    // No stdin to wait on (EAGAIN on a non-blocking one, EOF): carry on.
  }
}
