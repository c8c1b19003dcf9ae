/**
 * `checkPatchSite`: can this old function take a trampoline to its
 * replacement? The SPEC §2 "functions" checks that need the old function's
 * first bytes and both addresses, done before anything is written (SPEC §6).
 */
import type { Arch } from "../../arch/index.ts";
import { XspliceError } from "../../errors.ts";

/** Where and what APPLY will write for one function (SPEC §3). */
export interface PatchSite {
  /** Address of the trampoline: `oldAddr` plus the bytes stepped over (`endbr64`). */
  at: bigint;
  /** Bytes stepped over at the start of the old function. */
  skip: number;
  /** The trampoline bytes. */
  bytes: Uint8Array;
}

/**
 * Check a patch site: `old_size` below the architecture's minimum for this
 * function (5 on x86-64, 9 when it starts with `endbr64`) `EINVAL`; the
 * replacement out of the trampoline's reach `EOVERFLOW`. `oldCode` is at
 * least the first bytes of the old function (4 suffice on x86-64).
 */
export function checkPatchSite(
  arch: Arch,
  oldCode: Uint8Array,
  oldSize: number | bigint,
  oldAddr: bigint,
  newAddr: bigint,
  name = `function at 0x${oldAddr.toString(16)}`,
): PatchSite {
  const min = arch.minPatchSize(oldCode);
  const skip = arch.patchOffset(oldCode);
  if (BigInt(oldSize) < BigInt(min)) {
    const why = skip > 0 ? ` (it starts with ${skip} bytes that must stay)` : "";
    throw new XspliceError(
      "EINVAL",
      `${name}: old_size ${oldSize} is below the ${min} bytes a jump needs${why}`,
      {
        symbol: name,
        address: oldAddr,
      },
    );
  }
  const at = oldAddr + BigInt(skip);
  try {
    return { at, skip, bytes: arch.trampoline(at, newAddr) };
  } catch (e) {
    if (e instanceof XspliceError && e.errno === "EOVERFLOW") {
      throw new XspliceError("EOVERFLOW", `${name}: replacement is out of reach: ${e.message}`, {
        symbol: name,
        address: oldAddr,
      });
    }
    throw e;
  }
}
