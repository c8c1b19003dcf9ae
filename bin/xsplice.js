#!/usr/bin/env node
// Entry point of the `xsplice` command: the compiled command line in dist/cli.cjs
// (`npm ci` builds it through the `prepare` script; `npm run build` rebuilds it).
//
// It is run as a `vm.Script` with V8's code cache: compiling the 470 KB bundle and then
// each function on its first call was a tenth of a command's CPU time (an upload's, issue
// #13). After a command that succeeded without a cache (or whose cache V8 rejected), the
// code compiled so far is kept for that command; the next run starts from it. The cache
// lives in the package's `node_modules/.cache/xsplice/`, one file per command, named after
// the bundle's inode, size and mtime (V8 itself checks only the source's length) and
// removed by every build. It is used only when as trusted as the bundle: a regular file
// of the bundle's owner that no one else may write. Anything wrong with it: no cache.
import {
  closeSync,
  constants,
  fstatSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { Script } from "node:vm";

// Other xsplice runs recognise the holder of a seized target by this name
// (the tracer's comm) and wait for it instead of failing (src/core/session.ts).
process.title = "xsplice";
const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const dist = join(root, "dist");
const cli = join(dist, "cli.cjs");

let source;
let bundle;
try {
  source = readFileSync(cli, "utf8");
  bundle = statSync(cli);
} catch (err) {
  if (err?.code !== "ENOENT") throw err;
  process.stderr.write(`xsplice: ENOENT: ${cli} is missing: build it with \`npm run build\` (npm ci does)\n`);
  process.exit(1);
}

const args = process.argv.slice(2);
// Per command, since each compiles its own functions; other words (typos) are never kept (below).
const command = /^[a-z][a-z-]{0,31}$/.test(args[0] ?? "") ? args[0] : "none";
const cacheFile = join(
  root,
  "node_modules",
  ".cache",
  "xsplice",
  `${command}-${bundle.ino}-${bundle.size}-${Math.trunc(bundle.mtimeMs)}.v8`,
);

/** The kept code of this command, or undefined (absent, or not owned and written by the bundle's owner alone). */
function readCache() {
  let fd;
  try {
    fd = openSync(cacheFile, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
    const st = fstatSync(fd);
    if (!st.isFile() || st.uid !== bundle.uid || (st.mode & 0o022) !== 0 || st.size > 64 << 20)
      return undefined;
    return readFileSync(fd);
  } catch {
    return undefined;
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/** Keep `data` for the next run: written beside and renamed, so that a reader never sees half of it. */
function writeCache(data) {
  if (process.getuid?.() !== bundle.uid) return; // the bundle's owner's runs would refuse it
  const tmp = `${cacheFile}.${process.pid}.tmp`;
  try {
    mkdirSync(dirname(cacheFile), { recursive: true, mode: 0o755 });
    writeFileSync(tmp, data, { mode: 0o644, flag: "wx" });
    renameSync(tmp, cacheFile);
  } catch {
    // a read-only install runs without one
  }
}

const cachedData = readCache();
const script = new Script(`(function (exports, require, module, __filename, __dirname) {${source}\n})`, {
  filename: cli,
  ...(cachedData ? { cachedData } : {}),
});
const mod = { exports: {} };
script.runInThisContext()(mod.exports, createRequire(cli), mod, cli, dist);
process.exitCode = await mod.exports.main(args);
if (process.exitCode === 0 && (cachedData === undefined || script.cachedDataRejected))
  writeCache(script.createCachedData());
