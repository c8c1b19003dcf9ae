/**
 * Where the agent's child processes (the exec gate, the fan-out workers) start
 * from. From the sources (tests, `tsx`) a child is the TypeScript file beside
 * this one, run through tsx's loader; from the compiled package it is the
 * bundle `scripts/build.mjs` writes beside `dist/cli.cjs`, run by plain Node —
 * tsx is a development tool and is not installed with the package.
 */
import type { ForkOptions } from "node:child_process";
import { fileURLToPath } from "node:url";

/** A child entry point: the file to `fork` and the `execArgv` it needs. */
export interface ChildEntry {
  file: string;
  execArgv: NonNullable<ForkOptions["execArgv"]>;
}

/** `source` (a `.ts` file of src/agent) or `bundle` (a `.js` file of dist/), whichever this build is. */
export function childEntry(source: string, bundle: string): ChildEntry {
  const fromSources = import.meta.url.endsWith(".ts");
  const file = fileURLToPath(new URL(fromSources ? `./${source}` : `./${bundle}`, import.meta.url));
  return { file, execArgv: fromSources ? ["--import", import.meta.resolve("tsx")] : [] };
}

/**
 * In a child (the gate, a worker): call `fn` once the parent is gone. Also at once when it is
 * gone already: a parent killed while the child was still loading closed the channel before
 * anyone listened, and the disconnect event was missed.
 */
export function whenParentGone(fn: () => void): void {
  process.on("disconnect", fn);
  if (!process.connected) fn();
}
