/** The x86-64 implementation of {@link Arch}: SDM encodings plus the psABI relocation table. */
import { EM } from "../../elf/defs.ts";
import { MACHINES } from "../machines.ts";
import type { Arch } from "../types.ts";
import {
  absoluteStub,
  BRANCH_REACH,
  minPatchSize,
  nops,
  patchOffset,
  STUB_SIZE,
  trampoline,
} from "./encode.ts";
import { loadFromSlot, pcFieldUse } from "./insn.ts";
import { relocation, relocationName } from "./relocs.ts";

/** x86-64: `e9 rel32` trampolines, Intel NOPs, `endbr64` awareness, 14-byte absolute stubs. */
export const x86_64: Arch = {
  machine: EM.X86_64,
  name: "x86_64",
  trampoline,
  trampolineSize: MACHINES[EM.X86_64]!.trampolineSize,
  nops,
  patchOffset,
  minPatchSize,
  branchReach: BRANCH_REACH,
  relocation,
  relocationName,
  absoluteStub,
  stubSize: STUB_SIZE,
  pcFieldUse,
  loadFromSlot,
};
