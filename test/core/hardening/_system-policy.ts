/**
 * Run xsplice (or a script) as if `/etc/xsplice/policy.json` held a policy of
 * the test's making — without touching this machine's /etc, which other
 * xsplice runs share: the command runs in a private mount namespace
 * (`unshare -m`) where /etc is an overlay whose upper layer is a temporary
 * directory. Whatever `files` describes appears under /etc/xsplice/ there,
 * with the modes and link targets given.
 */
import { spawn } from "node:child_process";
import { chmodSync, mkdirSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { XSPLICE_BIN } from "../../../examples/lib/xsplice.ts";
import type { Run } from "../../cli/_run.ts";

/** A file under /etc/xsplice/: its content (mode 0644 unless given), or a symbolic link. */
export type EtcFile = { content: string; mode?: number } | { symlink: string };

/** The upper layer for `/etc` holding `files` under `xsplice/`, in `dir` (which must be empty). */
export function etcLayer(dir: string, files: Record<string, EtcFile>): string {
  const upper = join(dir, "upper");
  mkdirSync(join(upper, "xsplice"), { recursive: true, mode: 0o755 });
  mkdirSync(join(dir, "work"), { recursive: true });
  for (const [name, f] of Object.entries(files)) {
    const path = join(upper, "xsplice", name);
    if ("symlink" in f) symlinkSync(f.symlink, path);
    else {
      writeFileSync(path, f.content);
      chmodSync(path, f.mode ?? 0o644);
    }
  }
  return dir;
}

/** Run `argv` (an executable and its arguments) with the /etc layer made by `etcLayer`. */
export function runWithEtc(
  layer: string,
  argv: string[],
  env: Record<string, string | undefined> = {},
): Promise<Run> {
  const script =
    'set -e; mount -t overlay overlay -o "lowerdir=/etc,upperdir=$0/upper,workdir=$0/work" /etc; exec "$@"';
  const full: NodeJS.ProcessEnv = { ...process.env, XSPLICE_POLICY: undefined, ...env };
  for (const [k, v] of Object.entries(env)) if (v === undefined) delete full[k];
  return new Promise((resolve) => {
    const child = spawn("unshare", ["-m", "--propagation", "private", "sh", "-c", script, layer, ...argv], {
      stdio: ["ignore", "pipe", "pipe"],
      env: full,
    });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (d: string) => {
      stdout += d;
    });
    child.stderr.setEncoding("utf8").on("data", (d: string) => {
      stderr += d;
    });
    const timer = setTimeout(() => child.kill("SIGKILL"), 60_000);
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ status: code ?? -1, stdout, stderr });
    });
  });
}

/** `xsplice ARGS...` under the /etc layer. */
export function xspliceWithEtc(
  layer: string,
  args: string[],
  env: Record<string, string | undefined> = {},
): Promise<Run> {
  return runWithEtc(layer, [process.execPath, XSPLICE_BIN, ...args], env);
}
