/**
 * Child scripts bundled for fast start: a test that starts a TypeScript child
 * per iteration (a tracer or library user it SIGKILLs) pays tsx's start-up
 * each time; the same script bundled by esbuild (which tsx brings along) into
 * one plain ESM file starts in about a third of that time.
 */
import { renameSync } from "node:fs";
import { basename, join } from "node:path";
import { BUILD_DIR } from "./cc.ts";

/**
 * Node arguments that run the TypeScript file `entry` (absolute): the path of
 * its bundle under `test/.build/bundles/`, rebuilt on every call (tens of ms;
 * a changed source is never missed), or `--import tsx entry` when esbuild is
 * not at hand. `koffi` stays external, since it loads a native addon. The
 * bundle's own location is what `import.meta.url` gives in every module
 * bundled into it, so modules that find files relative to themselves must not
 * depend on that in the child.
 */
export async function nodeCommand(entry: string): Promise<string[]> {
  let buildSync: typeof import("esbuild").buildSync;
  try {
    ({ buildSync } = await import("esbuild"));
  } catch {
    return ["--import", "tsx", entry];
  }
  const outfile = join(BUILD_DIR, "bundles", `${basename(entry, ".ts")}.mjs`);
  // Written beside and renamed, so that a child started from an earlier bundle never reads half a file.
  const tmp = `${outfile}.${process.pid}.tmp`;
  buildSync({
    entryPoints: [entry],
    bundle: true,
    platform: "node",
    format: "esm",
    outfile: tmp,
    external: ["koffi"],
    logLevel: "error",
  });
  renameSync(tmp, outfile);
  return [outfile];
}
