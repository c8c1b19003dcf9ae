/**
 * Just enough x86-64 instruction recognition to reroute a PC-relative
 * reference that cannot reach its target (SPEC §2 "relocations"): calls and
 * jumps go through a stub; `lea sym(%rip),%reg` becomes `mov slot(%rip),%reg`,
 * the reverse of the psABI's GOTPCRELX relaxation. Anything else stays
 * unreachable and the linker reports EOVERFLOW.
 */
import { XspliceError } from "../../errors.ts";
import type { PcFieldUse } from "../types.ts";

/** ModRM with mod = 00 and r/m = 101: RIP-relative disp32 (SDM Vol. 2A, table 2-7). */
function isRipModrm(b: number | undefined): boolean {
  return b !== undefined && (b & 0xc7) === 0x05;
}

/** True for a REX prefix with W set (64-bit operand size). */
function isRexW(b: number | undefined): boolean {
  return b !== undefined && (b & 0xf8) === 0x48;
}

/**
 * Classify the instruction whose rel32/disp32 sits at `field`. A field right
 * after `e8`/`e9` is a call/jmp rel32, after `0f 8x` a jcc rel32: these are
 * branches, since a ModRM byte before a disp32 can never be `e8`/`e9`/`8x`
 * with RIP addressing. `REX.W 8d /r` with RIP addressing is a 64-bit `lea`.
 */
export function pcFieldUse(code: Uint8Array, field: number): PcFieldUse {
  const b1 = code[field - 1];
  if (b1 === 0xe8 || b1 === 0xe9) return "branch";
  if (code[field - 2] === 0x0f && b1 !== undefined && (b1 & 0xf0) === 0x80) return "branch";
  if (code[field - 2] === 0x8d && isRipModrm(b1) && isRexW(code[field - 3])) return "address";
  return "other";
}

/** Turn `lea disp(%rip),%reg` into `mov disp(%rip),%reg`: same length, same operands, now a load. */
export function loadFromSlot(code: Uint8Array, field: number): void {
  if (pcFieldUse(code, field) !== "address") {
    throw new XspliceError("EINVAL", `no RIP-relative lea before offset 0x${field.toString(16)}`, {
      offset: field,
    });
  }
  code[field - 2] = 0x8b;
}
