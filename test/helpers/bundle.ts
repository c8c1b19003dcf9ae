/**
 * Child scripts bundled for fast start: a test that starts a TypeScript child
 * per iteration (a tracer or library user it SIGKILLs) pays tsx's start-up
 * each time; the same script bundled by esbuild (which tsx brings along) into
 * one plain ESM file starts in about a third of that time.
 */
import { chmodSync, cpSync, mkdtempSync, renameSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { BUILD_DIR, ROOT } from "./cc.ts";

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

/** A child script bundled outside the checkout, for a child that cannot read the checkout. */
export interface PortableCommand {
  /** Node arguments that run it. */
  args: string[];
  /** Remove the copy. */
  dispose(): void;
}

/**
 * Node arguments that run the TypeScript file `entry` (absolute) from a copy
 * any user can read: a bundle in a fresh mode-0755 directory under the system's
 * temporary directory, with koffi (external to the bundle: a native addon) and
 * its prebuilt binary copied beside it. A child run as another user (uid 65534
 * for the EPERM checks) cannot read a checkout inside a private directory
 * (`/root`, a `mktemp -d` folder), so it cannot start from the tree itself.
 */
export function portableCommand(entry: string): PortableCommand {
  const dir = readableDirWithKoffi();
  try {
    const outfile = join(dir, `${basename(entry, ".ts")}.mjs`);
    // esbuild comes with tsx, which the test runner itself needs.
    const { buildSync } = createRequire(import.meta.url)("esbuild") as typeof import("esbuild");
    buildSync({
      entryPoints: [entry],
      bundle: true,
      platform: "node",
      format: "esm",
      outfile,
      external: ["koffi"],
      logLevel: "error",
    });
    chmodSync(outfile, 0o644);
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  return {
    args: [join(dir, `${basename(entry, ".ts")}.mjs`)],
    dispose: () => rmSync(dir, { recursive: true, force: true }),
  };
}

/** A fresh mode-0755 directory under the system's temporary directory, holding a copy of koffi. */
function readableDirWithKoffi(): string {
  const dir = mkdtempSync(join(tmpdir(), "xsplice-test-"));
  try {
    chmodSync(dir, 0o755); // mkdtemp makes it 0700
    for (const pkg of ["koffi", "@koromix"])
      cpSync(join(ROOT, "node_modules", pkg), join(dir, "node_modules", pkg), { recursive: true });
    // The copies keep the checkout's modes; the directories made on the way are the umask's.
    chmodSync(join(dir, "node_modules"), 0o755);
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  return dir;
}

/**
 * The compiled command line (`bin/xsplice.js`, `dist/`, `package.json`) copied
 * where any user can read it, for running `xsplice` as another user (the reason
 * is {@link portableCommand}'s). The checkout's `dist/` must be built (the test
 * runner builds it).
 */
export function portableCli(): PortableCommand {
  const dir = readableDirWithKoffi();
  try {
    for (const part of ["bin", "dist", "package.json"])
      cpSync(join(ROOT, part), join(dir, part), { recursive: true });
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  return {
    args: [join(dir, "bin", "xsplice.js")],
    dispose: () => rmSync(dir, { recursive: true, force: true }),
  };
}
