/**
 * Architecture dispatch: the only switch on `e_machine` in xsplice
 * (architecture.md, STYLE §4). Everything else works through {@link Arch}.
 */
import { EM } from "../elf/defs.ts";
import { XspliceError } from "../errors.ts";
import type { Arch } from "./types.ts";
import { x86_64 } from "./x86_64/arch.ts";

export type { Arch, PcFieldUse, RangeCheck, RelocInfo, RelocKind, RelocValues } from "./types.ts";

/** The {@link Arch} for an ELF `e_machine`; `EOPNOTSUPP` for machines xsplice does not (yet) patch. */
export function archFor(machine: number): Arch {
  switch (machine) {
    case EM.X86_64:
      return x86_64;
    case EM.AARCH64:
      // SPEC names arm64 as next; the interface already carries what it needs (reach, stubs).
      throw new XspliceError("EOPNOTSUPP", `machine EM_AARCH64 (${machine}) is not supported yet`);
    default:
      throw new XspliceError("EOPNOTSUPP", `machine ${machine} is not supported`);
  }
}
