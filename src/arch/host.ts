/**
 * The machine xsplice itself runs on, for the code that drives live
 * processes: ptrace only reaches processes of the tracer's own architecture,
 * so register layouts, system call numbers and the inject stubs are the
 * host's. `src/process/` and `src/core/` take every such fact from here, never
 * from `x86_64/` directly; an arm64 port adds `arm64/regs.ts`, `linux.ts` and
 * `inject-stub.ts` and makes this file choose (docs/architecture.md).
 */
import { XspliceError } from "../errors.ts";

export * from "./x86_64/inject-stub.ts";
export * from "./x86_64/linux.ts";
export * from "./x86_64/park.ts";
export * from "./x86_64/regs.ts";

/** `EOPNOTSUPP` unless xsplice runs on a machine whose process facts this build has (x86-64). */
export function checkHost(): void {
  if (process.arch !== "x64")
    throw new XspliceError(
      "EOPNOTSUPP",
      `live processes on ${process.arch} are not supported yet (x86-64 only)`,
    );
}
