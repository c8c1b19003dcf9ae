/**
 * The agent tests' target and payloads: `test/fixtures/agent/agent-target.c`
 * built as SPEC §12 asks, and payloads for it built with `xsplice build`,
 * cached under `test/.build/agent/`.
 */
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, renameSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { buildPayload } from "../../src/build/index.ts";
import { BUILD_DIR, builderFingerprint, compileC, FIXTURES, INCLUDE } from "../helpers/cc.ts";
import { startTarget, type Target } from "../helpers/target.ts";

/** The value answer(1) has unpatched, and with fix.c / fix2.c applied. */
export const OLD_VALUE = 4;
export const FIX_VALUE = 1004;
export const FIX2_VALUE = 2004;

/** The target executable. */
export function agentTarget(): string {
  return compileC({
    sources: ["agent/agent-target.c"],
    kind: "exe",
    flags: [
      "-O2",
      "-g",
      "-flive-patching=inline-clone",
      "-fno-omit-frame-pointer",
      "-fPIE",
      "-pie",
      "-fcf-protection=full",
      "-Wl,--build-id",
    ],
    name: "agent-target",
  });
}

/** A payload from test/fixtures/agent/`source` against `target`. */
export function agentPayload(source: string, target: string): string {
  const src = join(FIXTURES, "agent", source);
  const h = createHash("sha256");
  h.update(target);
  h.update(readFileSync(target));
  h.update(readFileSync(src));
  h.update(readFileSync(join(INCLUDE, "xsplice.h")));
  h.update(builderFingerprint());
  const out = join(BUILD_DIR, "agent", `${basename(source, ".c")}-${h.digest("hex").slice(0, 12)}.xsplice`);
  if (existsSync(out)) return out;
  mkdirSync(dirname(out), { recursive: true });
  const tmp = `${out}.tmp${process.pid}`;
  buildPayload({ sources: [src], target, out: tmp });
  renameSync(tmp, out);
  return out;
}

/** Ask a serving target for answer(1); resolves with the value and the original's call count. */
export async function ask(t: Target): Promise<{ value: number; oldCalls: number }> {
  const from = t.lines.length;
  t.send("x");
  const line = await t.waitFor(/^value=/, { from });
  const m = /^value=(-?\d+) old_calls=(\d+)$/.exec(line);
  if (!m) throw new Error(`unexpected line ${line}`);
  return { value: Number(m[1]), oldCalls: Number(m[2]) };
}

/** Start `n` serving targets (killed by the caller, also when this fails half-way). */
export async function startTargets(exe: string, n: number, into: Target[]): Promise<Target[]> {
  for (let i = 0; i < n; i++) into.push(await startTarget(exe));
  return into;
}
