/**
 * Runs the C compiler and the system linker for `xsplice build` (SPEC §11) and
 * turns their failures into one-line `XspliceError`s that carry the tool's own
 * diagnostic, so a user sees why the compiler refused the payload.
 */
import { spawnSync } from "node:child_process";
import { XspliceError } from "../errors.ts";

/** Longest diagnostic kept in an error line; the full text stays in `cause`. */
const MAX_DIAGNOSTIC = 400;

/**
 * Reduce a tool's stderr to one line: the `error:` lines if there are any
 * (gcc's notes and "In function" context lines say less), else every line.
 */
export function oneLineDiagnostic(stderr: string): string {
  const lines = stderr
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l !== "");
  const errors = lines.filter((l) => /\berror\b/i.test(l));
  const text = (errors.length > 0 ? errors : lines).join("; ");
  return text.length > MAX_DIAGNOSTIC ? `${text.slice(0, MAX_DIAGNOSTIC)}...` : text;
}

/**
 * Run `cmd args` and return its stdout. A missing program is `ENOENT`; a
 * non-zero exit is `EINVAL` with `what` and the program's diagnostic.
 */
export function runTool(cmd: string, args: string[], what: string): string {
  // LC_ALL=C: plain ASCII quotes and English text in the diagnostics we pass on.
  const r = spawnSync(cmd, args, {
    encoding: "utf8",
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, LC_ALL: "C" },
  });
  if (r.error) {
    const code = (r.error as NodeJS.ErrnoException).code;
    if (code === "ENOENT") throw new XspliceError("ENOENT", `${what}: program '${cmd}' not found`);
    throw new XspliceError(
      "EINVAL",
      `${what}: cannot run '${cmd}': ${r.error.message}`,
      {},
      { cause: r.error },
    );
  }
  if (r.status !== 0) {
    const why = oneLineDiagnostic(r.stderr) || `exit status ${r.status ?? r.signal}`;
    throw new XspliceError("EINVAL", `${what}: ${why}`, {}, { cause: r.stderr });
  }
  return r.stdout;
}
