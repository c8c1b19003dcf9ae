/**
 * The CLI tests' helpers: `xsplice` run as a user runs it (bin/xsplice.js in a
 * child process, with an environment of the test's choosing, e.g.
 * `XSPLICE_POLICY`), and PEM key pairs made by openssl, the tool a user makes
 * them with.
 */
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { XSPLICE_BIN } from "../../examples/lib/xsplice.ts";
import { tool } from "../helpers/cc.ts";

/** One run's exit status and output. */
export interface Run {
  status: number;
  stdout: string;
  stderr: string;
}

/**
 * Run `xsplice ARGS...` with `env` added to this process's environment (a key
 * set to undefined is removed). `XSPLICE_POLICY` is set only when `env` sets it.
 */
export function xsplice(args: string[], env: Record<string, string | undefined> = {}): Promise<Run> {
  const full: NodeJS.ProcessEnv = { ...process.env, XSPLICE_POLICY: undefined, ...env };
  for (const [k, v] of Object.entries(env)) if (v === undefined) delete full[k];
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [XSPLICE_BIN, ...args], {
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

/** A PEM key pair written by openssl: `priv` (PKCS#8) and `pub` (SPKI) paths. */
export interface KeyPair {
  priv: string;
  pub: string;
}

/** Make an `rsa` (2048-bit) or `ed25519` key pair named `name` in `dir` with openssl. */
export function opensslKeyPair(dir: string, name: string, kind: "rsa" | "ed25519"): KeyPair {
  const priv = join(dir, `${name}.pem`);
  const pub = join(dir, `${name}.pub.pem`);
  const algo =
    kind === "rsa" ? ["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"] : ["-algorithm", "ED25519"];
  tool("openssl", ["genpkey", ...algo, "-out", priv]);
  tool("openssl", ["pkey", "-in", priv, "-pubout", "-out", pub]);
  return { priv, pub };
}

/** A fresh temporary directory and a function that removes it. */
export function tempDir(prefix: string): { dir: string; remove: () => void } {
  const dir = mkdtempSync(join(tmpdir(), `xsplice-${prefix}-`));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}
